package store

import (
	"context"
	"database/sql"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// maxBatch bounds how many writes share one commit, so one fsync never waits on an unbounded batch.
const maxBatch = 256

// writeTx is one write inside a group-committed transaction. Its events are published only if
// the write's changes commit. It is the store's own: callers outside get named methods.
type writeTx struct {
	tx     *sql.Tx
	ctx    context.Context
	events []Event
}

// Exec runs a statement in the write transaction.
func (t *writeTx) Exec(query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, query, args...)
}

// QueryRow runs a query that returns at most one row in the write transaction.
func (t *writeTx) QueryRow(query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.ctx, query, args...)
}

// Query runs a query in the write transaction.
func (t *writeTx) Query(query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(t.ctx, query, args...)
}

// Publish queues ev for delivery to subscribers once the transaction has committed.
func (t *writeTx) Publish(ev Event) { t.events = append(t.events, ev) }

type job struct {
	fn   func(*writeTx) error
	err  error
	done chan struct{}
}

// updateOnce runs fn in the single writer. It returns after fn's changes are committed and
// synced to disk (nil), or rolled back (fn's error, or the commit's). Concurrent updates share
// commits.
// It waits for the outcome even when ctx ends, because the write may already be committed.
func (s *Store) updateOnce(ctx context.Context, fn func(*writeTx) error) error {
	j := &job{fn: fn, done: make(chan struct{})}
	// The read lock orders enqueueing before Close: every job queued before Close is drained.
	s.closing.RLock()
	if s.isClosed {
		s.closing.RUnlock()
		return ErrClosed
	}
	select {
	case s.jobs <- j:
	case <-ctx.Done():
		s.closing.RUnlock()
		return ctx.Err()
	}
	s.closing.RUnlock()
	<-j.done
	return j.err
}

func (s *Store) writeLoop() {
	defer close(s.done)
	lastBatch := 0
	for {
		var first *job
		select {
		case first = <-s.jobs:
		case <-s.closed:
			// Drain what was queued before Close so no accepted write is dropped.
			for {
				select {
				case j := <-s.jobs:
					s.commitBatch([]*job{j})
				default:
					return
				}
			}
		}
		batch := s.gather([]*job{first}, lastBatch > 1)
		lastBatch = len(batch)
		s.commitBatch(batch)
	}
}

// commitDelay is how long the writer waits for more writes before committing when the previous
// commit carried more than one, that is when writers are concurrent. Like PostgreSQL's
// commit_delay it trades a little latency for fewer fsyncs; a lone writer never waits.
const commitDelay = time.Millisecond

// gather adds the writes already waiting to batch and, when wait is set, those that arrive
// within commitDelay.
func (s *Store) gather(batch []*job, wait bool) []*job {
	for len(batch) < maxBatch {
		select {
		case j := <-s.jobs:
			batch = append(batch, j)
			continue
		default:
		}
		break
	}
	if !wait {
		return batch
	}
	timer := time.NewTimer(commitDelay)
	defer timer.Stop()
	for len(batch) < maxBatch {
		select {
		case j := <-s.jobs:
			batch = append(batch, j)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// commitBatch runs every job of the batch in one transaction, each inside its own savepoint so
// that one failing job does not undo the others, then commits once.
func (s *Store) commitBatch(batch []*job) {
	ctx := context.Background()
	finish := func(err error) {
		for _, j := range batch {
			if j.err == nil {
				j.err = err
			}
			close(j.done)
		}
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		finish(fmt.Errorf("begin write: %w", err))
		return
	}
	txs := make([]*writeTx, len(batch))
	for i, j := range batch {
		t := &writeTx{tx: tx, ctx: ctx}
		txs[i] = t
		if _, err := tx.ExecContext(ctx, "SAVEPOINT job"); err != nil {
			tx.Rollback()
			finish(fmt.Errorf("savepoint: %w", err))
			return
		}
		j.err = runJob(j.fn, t)
		if j.err != nil {
			t.events = nil
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO job"); err != nil {
				tx.Rollback()
				finish(fmt.Errorf("rollback to savepoint: %w", err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE job"); err != nil {
			tx.Rollback()
			finish(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		finish(fmt.Errorf("commit: %w", err))
		return
	}
	s.commits.add(1)
	for _, t := range txs {
		for _, ev := range t.events {
			s.hub.publish(ev)
		}
	}
	finish(nil)
}

func runJob(fn func(*writeTx) error, t *writeTx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return fn(t)
}

type counter struct{ n atomic.Int64 }

func (c *counter) add(d int64) { c.n.Add(d) }
func (c *counter) load() int64 { return c.n.Load() }
