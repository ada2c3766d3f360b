package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Mailbox is one folder of an account, with its RFC 9051 counters.
type Mailbox struct {
	ID            int64
	AccountID     int64
	Name          string
	SpecialUse    string // RFC 6154 attribute such as `\Sent`, or ""
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq int64
	Subscribed    bool
}

const mailboxColumns = "id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq, subscribed"

func scanMailbox(sc interface{ Scan(...any) error }) (Mailbox, error) {
	var m Mailbox
	err := sc.Scan(&m.ID, &m.AccountID, &m.Name, &m.SpecialUse, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.Subscribed)
	return m, err
}

// createMailbox makes a new mailbox with a UIDVALIDITY never used before in this store, so a name
// that is deleted and created again never lets a client mix old and new UIDs (RFC 9051 §2.3.1.1).
// The new mailbox is subscribed.
func (t *writeTx) createMailbox(accountID int64, name, specialUse string) (Mailbox, error) {
	return t.newMailbox(accountID, name, specialUse, true)
}

func (t *writeTx) newMailbox(accountID int64, name, specialUse string, subscribed bool) (Mailbox, error) {
	v, err := t.nextCounter("uidvalidity", time.Now().Unix())
	if err != nil {
		return Mailbox{}, err
	}
	res, err := t.Exec(`INSERT INTO mailboxes (account_id, name, special_use, uidvalidity, subscribed) VALUES (?, ?, ?, ?, ?)`,
		accountID, name, specialUse, uint32(v), subscribed)
	if err != nil {
		return Mailbox{}, fmt.Errorf("create mailbox %s: %w", name, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Mailbox{}, err
	}
	t.Publish(Event{Kind: MailboxCreated, AccountID: accountID, MailboxID: id, Name: name})
	return Mailbox{ID: id, AccountID: accountID, Name: name, SpecialUse: specialUse,
		UIDValidity: uint32(v), UIDNext: 1, HighestModSeq: 1, Subscribed: subscribed}, nil
}

// nextCounter returns the next value of a monotonic counter, starting at least at floor.
func (t *writeTx) nextCounter(name string, floor int64) (int64, error) {
	var v int64
	err := t.QueryRow(`INSERT INTO counters (name, value) VALUES (?1, ?2)
		ON CONFLICT (name) DO UPDATE SET value = max(value + 1, ?2) RETURNING value`, name, floor).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("counter %s: %w", name, err)
	}
	return v, nil
}

// Mailboxes lists an account's mailboxes by name.
func (s *Store) Mailboxes(ctx context.Context, accountID int64) ([]Mailbox, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE account_id = ? ORDER BY name", accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MailboxByName finds an account's mailbox. INBOX is case-insensitive (RFC 9051 §5.1).
func (s *Store) MailboxByName(ctx context.Context, accountID int64, name string) (Mailbox, error) {
	if equalFoldASCII(name, "INBOX") {
		name = "INBOX"
	}
	m, err := scanMailbox(s.db.QueryRowContext(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE account_id = ? AND name = ?", accountID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("mailbox %q: %w", name, ErrNotFound)
	}
	return m, err
}

// MailboxByID finds a mailbox by id.
func (s *Store) MailboxByID(ctx context.Context, id int64) (Mailbox, error) {
	m, err := scanMailbox(s.db.QueryRowContext(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("mailbox %d: %w", id, ErrNotFound)
	}
	return m, err
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// deleteUnreferencedBlobs drops bodies no message or queue entry uses any more.
func (t *writeTx) deleteUnreferencedBlobs() error {
	_, err := t.Exec(`DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = blobs.id)
		AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob_id = blobs.id)`)
	return err
}

// deleteBlobIfUnused drops one body once nothing refers to it.
func (t *writeTx) deleteBlobIfUnused(blobID int64) error {
	_, err := t.Exec(`DELETE FROM blobs WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = ?1)
		AND NOT EXISTS (SELECT 1 FROM queue WHERE blob_id = ?1)`, blobID)
	return err
}
