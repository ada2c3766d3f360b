package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// QueueEntry is one remote recipient of one message waiting in the outbound queue.
type QueueEntry struct {
	ID            int64
	BlobID        int64
	MailFrom      string // "" for the null sender (bounces): never bounced again
	Rcpt          string
	Domain        string // lower-case recipient domain
	Created       time.Time
	NextAttempt   time.Time
	LastAttempt   time.Time // zero before the first attempt
	Attempts      int
	LastError     string
	LastHost      string
	RequireTLS    bool // RFC 8689 REQUIRETLS was asked for at submission or reception
	SMTPUTF8      bool
	EightBit      bool
	DelayNotified bool
	Size          int64 // size of the message body
	// LeaseUntil is when the lease of an attempt in progress ends; zero when no attempt holds
	// the entry (see QueueClaim).
	LeaseUntil time.Time
	DSN        DSN // what the submitter asked to be told (RFC 3461)
}

const queueColumns = `q.id, q.blob_id, q.mail_from, q.rcpt, q.domain, q.created, q.next_attempt, q.last_attempt,
	q.attempts, q.last_error, q.last_host, q.requiretls, q.smtputf8, q.eightbit, q.delay_notified, b.size, q.lease_until,
	q.dsn_notify, q.dsn_orcpt, q.dsn_ret, q.dsn_envid`

func scanQueueEntry(sc interface{ Scan(...any) error }) (QueueEntry, error) {
	var e QueueEntry
	var created, next, last, lease int64
	err := sc.Scan(&e.ID, &e.BlobID, &e.MailFrom, &e.Rcpt, &e.Domain, &created, &next, &last,
		&e.Attempts, &e.LastError, &e.LastHost, &e.RequireTLS, &e.SMTPUTF8, &e.EightBit, &e.DelayNotified, &e.Size, &lease,
		&e.DSN.Notify, &e.DSN.ORcpt, &e.DSN.Ret, &e.DSN.EnvID)
	if err != nil {
		return e, err
	}
	e.Created = time.Unix(created, 0)
	e.NextAttempt = time.Unix(next, 0)
	if last != 0 {
		e.LastAttempt = time.Unix(last, 0)
	}
	if lease != 0 {
		e.LeaseUntil = time.Unix(lease, 0)
	}
	return e, nil
}

func (s *Store) queryQueue(ctx context.Context, where string, args ...any) ([]QueueEntry, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+queueColumns+" FROM queue q JOIN blobs b ON b.id = q.blob_id "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	defer rows.Close()
	var out []QueueEntry
	for rows.Next() {
		e, err := scanQueueEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("read queue: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// QueueDue lists up to limit entries whose next attempt is at or before now, oldest due first,
// leased or not. It only reads: the queue claims rows to attempt with QueueClaim.
func (s *Store) QueueDue(ctx context.Context, now time.Time, limit int) ([]QueueEntry, error) {
	return s.queryQueue(ctx, "WHERE q.next_attempt <= ? ORDER BY q.next_attempt, q.id LIMIT ?", now.Unix(), limit)
}

// QueueList lists every queued entry, oldest first (for `mailstead queue list` and the admin page).
func (s *Store) QueueList(ctx context.Context) ([]QueueEntry, error) {
	return s.queryQueue(ctx, "ORDER BY q.created, q.id")
}

// QueueEntryByID returns one entry, or an error matching ErrNotFound.
func (s *Store) QueueEntryByID(ctx context.Context, id int64) (QueueEntry, error) {
	es, err := s.queryQueue(ctx, "WHERE q.id = ?", id)
	if err != nil {
		return QueueEntry{}, err
	}
	if len(es) == 0 {
		return QueueEntry{}, fmt.Errorf("queue entry %d: %w", id, ErrNotFound)
	}
	return es[0], nil
}

// QueueNextAttempt returns the earliest next attempt of any entry; ok is false when the queue is
// empty.
func (s *Store) QueueNextAttempt(ctx context.Context) (next time.Time, ok bool, err error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT min(next_attempt) FROM queue").Scan(&v); err != nil {
		return time.Time{}, false, fmt.Errorf("read queue: %w", err)
	}
	if !v.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(v.Int64, 0), true, nil
}

// QueueBody returns a reader of the message body an entry refers to. It reads one chunk at a
// time (schema 12), so the queue sends and reports on a large message without holding it whole;
// each call is a fresh reader, so every attempt starts from the first byte.
func (s *Store) QueueBody(ctx context.Context, blobID int64) (*MessageReader, error) {
	return s.openBlob(ctx, blobID)
}

// QueueDone removes entries that are finished: delivered (the far side said 250), bounced, or
// removed by the operator. Bodies no longer used by a message or another entry are freed. Once
// this returns nil the entries are gone for good, so a restart never sends them again.
func (s *Store) QueueDone(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.updateOnce(ctx, func(t *writeTx) error {
		blobs := map[int64]bool{}
		for _, id := range ids {
			var blob int64
			err := t.QueryRow("DELETE FROM queue WHERE id = ? RETURNING blob_id", id).Scan(&blob)
			if errors.Is(err, sql.ErrNoRows) {
				continue // removed meanwhile (operator): nothing left to do
			}
			if err != nil {
				return fmt.Errorf("remove queue entry %d: %w", id, err)
			}
			blobs[blob] = true
		}
		for b := range blobs {
			if err := t.deleteBlobIfUnused(b); err != nil {
				return fmt.Errorf("free blob %d: %w", b, err)
			}
		}
		return nil
	})
}

// QueueDefer records a failed attempt of entries: the error, the host that gave it, and when to try
// again. It ends the attempt's lease, so the entries are due again at next.
func (s *Store) QueueDefer(ctx context.Context, ids []int64, lastError, host string, next time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	now := time.Now().Unix()
	return s.updateOnce(ctx, func(t *writeTx) error {
		for _, id := range ids {
			if _, err := t.Exec(`UPDATE queue SET attempts = attempts + 1, last_attempt = ?, last_error = ?,
				last_host = ?, next_attempt = ?, lease_owner = '', lease_until = 0 WHERE id = ?`, now, lastError, host, next.Unix(), id); err != nil {
				return fmt.Errorf("defer queue entry %d: %w", id, err)
			}
		}
		return nil
	})
}

// QueueMarkDelayNotified records that the sender of entries was told their delivery is delayed.
func (s *Store) QueueMarkDelayNotified(ctx context.Context, ids ...int64) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		for _, id := range ids {
			if _, err := t.Exec("UPDATE queue SET delay_notified = 1 WHERE id = ?", id); err != nil {
				return fmt.Errorf("mark queue entry %d: %w", id, err)
			}
		}
		return nil
	})
}

// QueueRetry makes entry id due now; id 0 makes every entry due. It returns how many entries it
// changed, and ErrNotFound for a missing id.
func (s *Store) QueueRetry(ctx context.Context, id int64) (int, error) {
	var n int64
	err := s.updateOnce(ctx, func(t *writeTx) error {
		q, args := "UPDATE queue SET next_attempt = ?", []any{time.Now().Unix()}
		if id != 0 {
			q += " WHERE id = ?"
			args = append(args, id)
		}
		res, err := t.Exec(q, args...)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err == nil && n > 0 {
			t.Publish(Event{Kind: QueueDue})
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("retry queue: %w", err)
	}
	if id != 0 && n == 0 {
		return 0, fmt.Errorf("queue entry %d: %w", id, ErrNotFound)
	}
	return int(n), nil
}

// QueueRemove drops entry id without delivering or bouncing it; id 0 empties the queue. It
// returns how many entries went, and ErrNotFound for a missing id.
func (s *Store) QueueRemove(ctx context.Context, id int64) (int, error) {
	var n int
	err := s.updateOnce(ctx, func(t *writeTx) error {
		n = 0
		q, args := "DELETE FROM queue RETURNING blob_id", []any(nil)
		if id != 0 {
			q = "DELETE FROM queue WHERE id = ? RETURNING blob_id"
			args = []any{id}
		}
		rows, err := t.Query(q, args...)
		if err != nil {
			return err
		}
		var blobs []int64
		for rows.Next() {
			var b int64
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return err
			}
			blobs = append(blobs, b)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		n = len(blobs)
		for _, b := range blobs {
			if err := t.deleteBlobIfUnused(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("remove from queue: %w", err)
	}
	if id != 0 && n == 0 {
		return 0, fmt.Errorf("queue entry %d: %w", id, ErrNotFound)
	}
	return n, nil
}

// IsLocalAddress reports whether mail to addr is delivered here, and to which accounts. The queue
// uses it to deliver bounces to local senders directly.
func (s *Store) IsLocalAddress(ctx context.Context, addr string) ([]int64, bool, error) {
	local, domain, err := SplitAddress(addr)
	if err != nil {
		return nil, false, nil
	}
	ids, err := s.LookupRecipient(ctx, local, domain)
	if errors.Is(err, ErrNotOurDomain) || errors.Is(err, ErrUnknownUser) || errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return ids, len(ids) > 0, nil
}
