package store

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// ErrPasswordBusy refuses a password check because the server is already hashing as many
// passwords as it has cores and enough are waiting: the caller answers with a temporary failure.
var ErrPasswordBusy = errors.New("too many password checks at once, try again")

// hashBudget bounds concurrent argon2id checks server-wide. Each check takes 19 MiB and a core
// for about 20 ms; without a bound, 250 parallel wrong logins took 4.9 GB. A check waits at most
// wait for a slot, and when queue checks are already waiting a new one is refused at once,
// before any hashing.
type hashBudget struct {
	slots   chan struct{}
	waiting atomic.Int32
	queue   int32
	wait    time.Duration
}

func newHashBudget(n int) *hashBudget {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &hashBudget{slots: make(chan struct{}, n), queue: int32(4 * n), wait: 3 * time.Second}
}

// acquire takes a hashing slot; release it with the returned function.
func (b *hashBudget) acquire(ctx context.Context) (func(), error) {
	select {
	case b.slots <- struct{}{}:
		return b.release, nil
	default:
	}
	if b.waiting.Add(1) > b.queue {
		b.waiting.Add(-1)
		return nil, ErrPasswordBusy
	}
	defer b.waiting.Add(-1)
	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
		return b.release, nil
	case <-t.C:
		return nil, ErrPasswordBusy
	case <-ctx.Done():
		return nil, errors.Join(ErrPasswordBusy, ctx.Err())
	}
}

func (b *hashBudget) release() { <-b.slots }
