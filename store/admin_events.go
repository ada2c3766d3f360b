package store

import (
	"context"
	"fmt"
	"time"
)

// MailEvent is one line of the admin page's "recent deliveries and rejections".
type MailEvent struct {
	At       time.Time
	Kind     string // "received", "delivered", "deferred", "bounced", "rejected"
	MailFrom string
	Rcpt     string
	Remote   string // client IP for received/rejected, remote host for delivered/deferred
	Detail   string // the SMTP reply or reason
}

// Mail event kinds.
const (
	MailReceived  = "received"
	MailDelivered = "delivered"
	MailDeferred  = "deferred"
	MailBounced   = "bounced"
	MailRejected  = "rejected"
)

// mailEventsKept bounds the log: it is a window on recent traffic, not an archive.
const mailEventsKept = 2000

// RecordMailEvents appends events to the recent-events log and trims it to its newest rows. The
// SMTP receiver and the queue call it; it shares a commit with other writes under load.
func (s *Store) RecordMailEvents(ctx context.Context, evs ...MailEvent) error {
	if len(evs) == 0 {
		return nil
	}
	return s.updateOnce(ctx, func(t *writeTx) error {
		for _, e := range evs {
			at := e.At
			if at.IsZero() {
				at = time.Now()
			}
			if _, err := t.Exec(`INSERT INTO mail_events (at, kind, mail_from, rcpt, remote, detail)
				VALUES (?, ?, ?, ?, ?, ?)`, at.Unix(), e.Kind, e.MailFrom, e.Rcpt, e.Remote, truncateDetail(e.Detail, 500)); err != nil {
				return fmt.Errorf("record mail event: %w", err)
			}
		}
		_, err := t.Exec("DELETE FROM mail_events WHERE id <= (SELECT max(id) FROM mail_events) - ?", mailEventsKept)
		return err
	})
}

func truncateDetail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RecentMailEvents returns up to limit events, newest first; kind "" means every kind.
func (s *Store) RecentMailEvents(ctx context.Context, kind string, limit int) ([]MailEvent, error) {
	q := "SELECT at, kind, mail_from, rcpt, remote, detail FROM mail_events"
	args := []any{}
	if kind != "" {
		q += " WHERE kind = ?"
		args = append(args, kind)
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("recent mail events: %w", err)
	}
	defer rows.Close()
	var out []MailEvent
	for rows.Next() {
		var e MailEvent
		var at int64
		if err := rows.Scan(&at, &e.Kind, &e.MailFrom, &e.Rcpt, &e.Remote, &e.Detail); err != nil {
			return nil, err
		}
		e.At = time.Unix(at, 0)
		out = append(out, e)
	}
	return out, rows.Err()
}

// CountMailEvents counts the recorded events of each kind since the given time (the admin
// overview's "today"). Old events are pruned, so a count covers at most what is kept.
func (s *Store) CountMailEvents(ctx context.Context, since time.Time) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT kind, COUNT(*) FROM mail_events WHERE at >= ? GROUP BY kind", since.Unix())
	if err != nil {
		return nil, fmt.Errorf("count mail events: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var kind string
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, err
		}
		out[kind] = n
	}
	return out, rows.Err()
}
