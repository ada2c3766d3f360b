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
	mu        sync.RWMutex
	ham, spam int64
	tokens    map[string][2]int64
	used      int64 // models.clock at the last use, for eviction
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

	ham, spam, toks, err := st.JunkModel(ctx, accountID)
	if err != nil {
		return nil, err
	}
	m := &model{ham: ham, spam: spam, tokens: toks}
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

// trained applies a committed training to the cached model, as the store applied it.
func (ms *models) trained(accountID int64, spam, switched bool, tokens []string) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.gen == nil {
		ms.m, ms.gen = map[int64]*model{}, map[int64]uint64{}
	}
	ms.gen[accountID]++
	m := ms.m[accountID]
	if m == nil {
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

// counts returns the totals and the counts of the given tokens that the model knows.
func (m *model) counts(tokens []string) (ham, spam int64, out map[string][2]int64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out = make(map[string][2]int64, len(tokens)/2)
	for _, t := range tokens {
		if c, ok := m.tokens[t]; ok {
			out[t] = c
		}
	}
	return m.ham, m.spam, out
}
