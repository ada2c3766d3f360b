package junk

import (
	"context"
	"sync"
)

// maxCachedModels bounds the memory the models take (each up to MaxTokens tokens, a few MB):
// beyond it, the least recently used account's model is dropped and read again when needed.
const maxCachedModels = 16

// model is one account's token counts in memory. The store holds the truth; the filter is its
// only writer in the process, so it applies each training to the copy it has.
type model struct {
	enabled   bool
	threshold float64
	used      int64 // models.clock at the last use, for eviction

	mu        sync.RWMutex // guards what training changes
	ham, spam int64
	tokens    map[string][2]int64
	marks     map[string]int
}

// models caches each account's model. gen counts trainings and prunes per account, so a model
// loaded while one happened is not installed stale.
type models struct {
	mu    sync.Mutex
	m     map[int64]*model
	gen   map[int64]uint64
	clock int64
}

// get returns the account's model, loading it from the store if needed.
func (ms *models) get(ctx context.Context, st Store, accountID int64) (*model, error) {
	ms.mu.Lock()
	if ms.m == nil {
		ms.m, ms.gen = map[int64]*model{}, map[int64]uint64{}
	}
	ms.clock++
	if m := ms.m[accountID]; m != nil {
		m.used = ms.clock
		ms.mu.Unlock()
		return m, nil
	}
	gen := ms.gen[accountID]
	ms.mu.Unlock()

	m, err := load(ctx, st, accountID)
	if err != nil {
		return nil, err
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if cur := ms.m[accountID]; cur != nil {
		return cur, nil // another classification loaded it meanwhile
	}
	if ms.gen[accountID] != gen {
		return m, nil // trained while loading: use this once, load afresh next time
	}
	if len(ms.m) >= maxCachedModels {
		var oldest int64
		for id, c := range ms.m {
			if oldest == 0 || c.used < ms.m[oldest].used {
				oldest = id
			}
		}
		delete(ms.m, oldest)
	}
	m.used = ms.clock
	ms.m[accountID] = m
	return m, nil
}

// load reads an account's settings, and its model when the filter is on.
func load(ctx context.Context, st Store, accountID int64) (*model, error) {
	enabled, threshold, err := st.JunkAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if threshold <= 0 || threshold > 1 {
		threshold = DefaultThreshold
	}
	m := &model{enabled: enabled, threshold: threshold}
	if !enabled {
		return m, nil
	}
	if m.ham, m.spam, m.tokens, err = st.JunkModel(ctx, accountID); err != nil {
		return nil, err
	}
	if m.marks, err = st.JunkMarks(ctx, accountID); err != nil {
		return nil, err
	}
	return m, nil
}

// marked applies a committed mark to the cached model.
func (ms *models) marked(accountID int64, keys []string, mark int) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.gen == nil {
		return
	}
	ms.gen[accountID]++
	m := ms.m[accountID]
	if m == nil || m.marks == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.marks[k] |= mark
	}
}

// trained applies a committed training to the cached model, as the store applied it.
func (ms *models) trained(accountID int64, spam, switched bool, tokens []string) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.gen == nil {
		ms.m, ms.gen = map[int64]*model{}, map[int64]uint64{}
	}
	ms.gen[accountID]++
	m := ms.m[accountID]
	if m == nil || m.tokens == nil {
		return
	}
	d := [2]int64{1, 0}
	if spam {
		d = [2]int64{0, 1}
	}
	if switched {
		d = [2]int64{d[0] - d[1], d[1] - d[0]}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ham, m.spam = max(0, m.ham+d[0]), max(0, m.spam+d[1])
	for _, t := range tokens {
		c := m.tokens[t]
		c = [2]int64{max(0, c[0]+d[0]), max(0, c[1]+d[1])}
		if c == ([2]int64{}) {
			delete(m.tokens, t)
		} else {
			m.tokens[t] = c
		}
	}
}

// forget drops the account's cached model (after a prune or a change outside the filter).
func (ms *models) forget(accountID int64) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.gen == nil {
		return
	}
	ms.gen[accountID]++
	delete(ms.m, accountID)
}
