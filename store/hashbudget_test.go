package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// While every hashing slot is taken and the queue is full, a password check is refused at once
// with ErrPasswordBusy and hashes nothing, but an app password (a cheap lookup) still works.
func TestPasswordChecksAreBounded(t *testing.T) {
	s, err := Open(t.TempDir(), Options{PasswordChecks: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alice, _ := fixture(t, s)
	ctx := context.Background()
	app, _, err := s.AddAppPassword(ctx, alice.ID, "phone")
	if err != nil {
		t.Fatal(err)
	}
	s.hashes.wait = time.Hour // waiters must wait for the slot, not time out
	held, err := s.hashes.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	queue := int(s.hashes.queue)
	var wg sync.WaitGroup
	results := make(chan error, queue)
	for range queue {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Authenticate(ctx, "alice@example.test", "wrong")
			results <- err
		}()
	}
	for s.hashes.waiting.Load() < int32(queue) {
		time.Sleep(time.Millisecond) // wait for the queue to fill (an event, polled)
	}
	for _, user := range []string{"alice@example.test", "nobody@example.test"} {
		if _, err := s.Authenticate(ctx, user, "guess"); !errors.Is(err, ErrPasswordBusy) {
			t.Errorf("check of %s over the budget: %v, want ErrPasswordBusy", user, err)
		}
	}
	if a, err := s.Authenticate(ctx, "alice@example.test", app); err != nil || a.ID != alice.ID {
		t.Errorf("app password while hashing is saturated: %v", err)
	}
	held()
	wg.Wait()
	close(results)
	for err := range results {
		if !errors.Is(err, ErrAuthFailed) {
			t.Errorf("queued check: %v, want ErrAuthFailed", err)
		}
	}
	if n := len(s.hashes.slots); n != 0 {
		t.Errorf("%d hashing slots still held", n)
	}
}

// A queued check gives up after the queue deadline or when its context ends.
func TestPasswordCheckQueueDeadline(t *testing.T) {
	b := newHashBudget(1)
	b.wait = time.Millisecond
	release, err := b.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := b.acquire(context.Background()); !errors.Is(err, ErrPasswordBusy) {
		t.Errorf("after the queue deadline: %v", err)
	}
	b.wait = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.acquire(ctx); !errors.Is(err, ErrPasswordBusy) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if b.waiting.Load() != 0 {
		t.Errorf("%d still counted as waiting", b.waiting.Load())
	}
}
