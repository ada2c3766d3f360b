package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// ImportMessage is one message brought in from another server (mbox, Maildir), with the
// mailboxes it belongs in, its flags and its original internal date.
type ImportMessage struct {
	Mailboxes []string // target mailbox names, created when missing; one copy in each, one shared body
	Data      []byte   // CRLF-normalised RFC 5322 bytes
	Flags     []string
	Date      time.Time // internal date; zero means now
}

// ImportResult counts what an Import did: copies added, copies skipped because the same bytes
// were imported into that mailbox before, and mailboxes created.
type ImportResult struct {
	Added, Skipped, Created int
}

// Import adds a batch of messages to an account's mailboxes in one write. A copy whose bytes were
// imported into the same mailbox before is skipped (schema 4's fingerprints), so importing a
// file again, or resuming after an interruption, adds nothing twice. Each added copy publishes
// its event like an IMAP APPEND, so open sessions see it.
func (s *Store) Import(ctx context.Context, accountID int64, msgs []ImportMessage) (ImportResult, error) {
	type prepared struct {
		names               []string
		digest              []byte
		envelope, structure []byte
	}
	if len(msgs) == 0 {
		return ImportResult{}, nil
	}
	prep := make([]prepared, len(msgs))
	ids := map[string]int64{} // mailboxes that exist already, for the read-side check below
	for i, m := range msgs {
		sum := sha256.Sum256(m.Data)
		p := prepared{digest: sum[:]}
		for _, name := range m.Mailboxes {
			canon, err := CanonicalMailboxName(name)
			if err != nil {
				return ImportResult{}, fmt.Errorf("import: %w", err)
			}
			p.names = append(p.names, canon)
		}
		// Parsing is the slow part: done outside the writer, and only for messages that are not
		// all there already (a resumed import skips quickly through what it has done).
		if s.opts.Describe != nil && !s.imported(ctx, accountID, p.names, p.digest, ids) {
			p.envelope, p.structure = s.opts.Describe(bytes.NewReader(m.Data), int64(len(m.Data)))
		}
		prep[i] = p
	}
	now := time.Now()
	var res ImportResult
	err := s.update(ctx, func(t *writeTx) error {
		res = ImportResult{}
		boxes := map[string]int64{}
		mailbox := func(name string) (int64, error) {
			if id, ok := boxes[name]; ok {
				return id, nil
			}
			mb, err := t.mailboxByName(accountID, name)
			if err == nil {
				boxes[name] = mb.ID
				return mb.ID, nil
			}
			if err := t.createParents(accountID, name); err != nil {
				return 0, err
			}
			if mb, err = t.createMailbox(accountID, name, ""); err != nil {
				return 0, err
			}
			boxes[name] = mb.ID
			return mb.ID, nil
		}
		for i, m := range msgs {
			p := prep[i]
			date := m.Date
			if date.IsZero() {
				date = now
			}
			var blobID int64
			seen := map[int64]bool{}
			for _, name := range p.names {
				mb, err := mailbox(name)
				if err != nil {
					return fmt.Errorf("mailbox %q: %w", name, err)
				}
				if seen[mb] {
					continue
				}
				seen[mb] = true
				r, err := t.Exec("INSERT INTO import_fingerprints (mailbox_id, digest) VALUES (?, ?) ON CONFLICT DO NOTHING", mb, p.digest)
				if err != nil {
					return fmt.Errorf("fingerprint: %w", err)
				}
				if n, _ := r.RowsAffected(); n == 0 {
					res.Skipped++
					continue
				}
				if blobID == 0 {
					var err error
					if blobID, err = t.insertBlob(bytes.NewReader(m.Data), int64(len(m.Data))); err != nil {
						return err
					}
				}
				if p.envelope == nil && s.opts.Describe != nil { // imported before, but gone meanwhile
					p.envelope, p.structure = s.opts.Describe(bytes.NewReader(m.Data), int64(len(m.Data)))
				}
				if _, err := t.insertMessage(mb, newMessage{blobID: blobID, size: int64(len(m.Data)), flags: m.Flags,
					date: date, envelope: p.envelope, structure: p.structure, origin: FromImport}); err != nil {
					return err
				}
				res.Added++
			}
		}
		for _, ev := range t.events {
			if ev.Kind == MailboxCreated {
				res.Created++
			}
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("import into account %d: %w", accountID, err)
	}
	return res, nil
}

// imported reports whether a message's bytes were imported into every one of the named
// mailboxes before (a read, outside the writer; the writer decides for certain).
func (s *Store) imported(ctx context.Context, accountID int64, names []string, digest []byte, ids map[string]int64) bool {
	for _, name := range names {
		id, ok := ids[name]
		if !ok {
			mb, err := s.MailboxByName(ctx, accountID, name)
			if err != nil {
				return false
			}
			id = mb.ID
			ids[name] = id
		}
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM import_fingerprints WHERE mailbox_id = ? AND digest = ?", id, digest).Scan(&n); err != nil || n == 0 {
			return false
		}
	}
	return true
}
