package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"mailstead/message"
)

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// MailboxSnapshot is a mailbox as one read transaction saw it: what SELECT reports.
type MailboxSnapshot struct {
	Mailbox
	UIDs        []uint32 // every message, ascending
	Keywords    []string // keywords in use, sorted (for the FLAGS response)
	FirstUnseen uint32   // UID of the first message without \Seen, 0 if none
}

// Snapshot reads a mailbox row and its UID list in one consistent read transaction, so that
// UIDNEXT and HIGHESTMODSEQ describe exactly the UIDs returned.
func (s *Store) Snapshot(ctx context.Context, mailboxID int64) (MailboxSnapshot, error) {
	var snap MailboxSnapshot
	err := retryBusy(ctx, func() error {
		snap = MailboxSnapshot{}
		tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		mb, err := scanMailbox(tx.QueryRowContext(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE id = ?", mailboxID))
		if err != nil {
			return fmt.Errorf("mailbox %d: %w", mailboxID, notFound(err))
		}
		snap.Mailbox = mb
		rows, err := tx.QueryContext(ctx, "SELECT uid, flags FROM messages WHERE mailbox_id = ? ORDER BY uid", mailboxID)
		if err != nil {
			return err
		}
		defer rows.Close()
		kw := map[string]bool{}
		lastFlags := "\x00"
		for rows.Next() {
			var uid uint32
			var flags string
			if err := rows.Scan(&uid, &flags); err != nil {
				return err
			}
			snap.UIDs = append(snap.UIDs, uid)
			if flags == lastFlags {
				continue
			}
			lastFlags = flags
			seen := false
			for _, f := range parseFlags(flags) {
				if f == `\Seen` {
					seen = true
				} else if f[0] != '\\' {
					kw[f] = true
				}
			}
			if !seen && snap.FirstUnseen == 0 {
				snap.FirstUnseen = uid
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for k := range kw {
			snap.Keywords = append(snap.Keywords, k)
		}
		slices.Sort(snap.Keywords)
		return nil
	})
	if err != nil {
		return MailboxSnapshot{}, fmt.Errorf("snapshot of mailbox %d: %w", mailboxID, err)
	}
	return snap, nil
}

// MessageMeta is what FETCH and SEARCH need of a message without its body.
type MessageMeta struct {
	Message
	Envelope, Structure []byte // as Options.Describe made them; nil if not stored
}

// FetchMeta calls fn for each message of the mailbox whose UID is in uids (sorted ascending), in
// UID order. Messages expunged meanwhile are skipped. With describe, Envelope and Structure are
// filled.
func (s *Store) FetchMeta(ctx context.Context, mailboxID int64, uids []uint32, describe bool, fn func(*MessageMeta) error) error {
	if len(uids) == 0 {
		return nil
	}
	cols := "id, uid, modseq, flags, internal_date, size"
	if describe {
		cols += ", envelope, structure"
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+cols+" FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid",
		mailboxID, uids[0], uids[len(uids)-1])
	if err != nil {
		return fmt.Errorf("fetch from mailbox %d: %w", mailboxID, err)
	}
	defer rows.Close()
	var m MessageMeta
	m.MailboxID = mailboxID
	dest := []any{&m.ID, &m.UID, &m.ModSeq, new(string), new(int64), &m.Size}
	if describe {
		dest = append(dest, &m.Envelope, &m.Structure)
	}
	i := 0
	for rows.Next() {
		m.Envelope, m.Structure = nil, nil
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("fetch from mailbox %d: %w", mailboxID, err)
		}
		for i < len(uids) && uids[i] < m.UID {
			i++
		}
		if i == len(uids) {
			break
		}
		if uids[i] != m.UID {
			continue
		}
		m.Flags = parseFlags(*dest[3].(*string))
		m.InternalDate = time.Unix(*dest[4].(*int64), 0)
		if err := fn(&m); err != nil {
			return err
		}
	}
	return rows.Err()
}

// MessageHeader returns a message's header section: its prefix and the body up to and including
// the blank line that ends the header, read without loading the whole body.
func (s *Store) MessageHeader(ctx context.Context, messageID int64) ([]byte, error) {
	var prefix []byte
	var blob int64
	var chunked bool
	err := s.db.QueryRowContext(ctx, `SELECT m.prefix, m.blob_id, b.size != length(b.data) FROM messages m
		JOIN blobs b ON b.id = m.blob_id WHERE m.id = ?`, messageID).Scan(&prefix, &blob, &chunked)
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", messageID, notFound(err))
	}
	if chunked {
		r, err := s.openBlob(ctx, blob)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", messageID, err)
		}
		head, err := message.ReadHeaderAt(r, r.Size())
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", messageID, err)
		}
		return append(prefix, head...), nil
	}
	// Headers are nearly always short: read a first slice and grow only if needed.
	for n := 16 << 10; ; n *= 4 {
		var head []byte
		var size int
		if err := s.db.QueryRowContext(ctx, "SELECT substr(data, 1, ?), size FROM blobs WHERE id = ?", n, blob).Scan(&head, &size); err != nil {
			return nil, fmt.Errorf("message %d: %w", messageID, notFound(err))
		}
		if end, complete := message.HeaderLen(head); complete || len(head) >= size {
			return append(prefix, head[:end]...), nil
		}
	}
}
