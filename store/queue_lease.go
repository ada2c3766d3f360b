package store

import (
	"context"
	"fmt"
	"time"
)

// A queue row moves through one state machine, every step a write transaction:
//
//	due (next_attempt <= now, no live lease)
//	  → leased   QueueClaim picks due rows and leases them in the same transaction
//	  → gone     QueueDone: delivered or bounced (the row is deleted)
//	  → waiting  QueueDefer: attempt failed, lease cleared, next_attempt set
//
// Because picking and leasing are one transaction in the single writer, a row that one attempt
// holds is never picked by another, and a row deleted after its 250 can never be read as due
// again. A lease that outlives its holder (a crash) expires at lease_until, or is released at
// start by QueueReleaseLeases; only those attempts can run twice (at-least-once, RFC 5321 §6.1).

// QueueClaim asks for due rows to attempt.
type QueueClaim struct {
	Owner string    // who holds the leases (one queue instance); must not be empty
	Now   time.Time // rows due at or before Now whose lease (if any) ended by Now
	Until time.Time // when the leases end unless completed first
	Limit int       // how many due rows to consider, oldest due first
	// Pick chooses which of the due rows to lease now (the rest stay due); nil takes them all.
	// It runs inside the write transaction, so it must be quick and must not touch the store.
	Pick func(due []QueueEntry) []QueueEntry
}

// QueueClaim reads due, unleased rows and leases those c.Pick chooses, in one transaction. It
// returns the leased rows; on error none is leased.
func (s *Store) QueueClaim(ctx context.Context, c QueueClaim) ([]QueueEntry, error) {
	if c.Owner == "" {
		return nil, fmt.Errorf("claim queue rows: no lease owner")
	}
	var picked []QueueEntry
	err := s.updateOnce(ctx, func(t *writeTx) error {
		picked = nil
		rows, err := t.Query("SELECT "+queueColumns+` FROM queue q JOIN blobs b ON b.id = q.blob_id
			WHERE q.next_attempt <= ? AND q.lease_until <= ? ORDER BY q.next_attempt, q.id LIMIT ?`,
			c.Now.Unix(), c.Now.Unix(), c.Limit)
		if err != nil {
			return err
		}
		var due []QueueEntry
		for rows.Next() {
			e, err := scanQueueEntry(rows)
			if err != nil {
				rows.Close()
				return err
			}
			due = append(due, e)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		picked = due
		if c.Pick != nil && len(due) > 0 {
			picked = c.Pick(due)
		}
		for _, e := range picked {
			if _, err := t.Exec("UPDATE queue SET lease_owner = ?, lease_until = ? WHERE id = ?",
				c.Owner, c.Until.Unix(), e.ID); err != nil {
				return fmt.Errorf("lease queue entry %d: %w", e.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim queue rows: %w", err)
	}
	return picked, nil
}

// QueueReleaseLeases clears every lease not held by owner and returns how many it cleared. One
// queue works a data directory, so at its start any other lease was left by a process that
// died mid-attempt: its rows become due again at once instead of at lease expiry.
func (s *Store) QueueReleaseLeases(ctx context.Context, owner string) (int, error) {
	var n int64
	err := s.updateOnce(ctx, func(t *writeTx) error {
		res, err := t.Exec("UPDATE queue SET lease_owner = '', lease_until = 0 WHERE lease_owner NOT IN ('', ?)", owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("release queue leases: %w", err)
	}
	return int(n), nil
}
