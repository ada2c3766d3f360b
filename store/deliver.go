package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Delivery is one accepted message: stored once, placed in each local recipient's mailbox and
// queued for each remote recipient, all in one transaction.
type Delivery struct {
	MailFrom string // envelope sender, "" for the null sender
	// Body is the CRLF-normalised message, trace headers included, shared by all copies; Size is
	// its length. It is read through ReadAt (twice: to describe it, then to store it chunk by
	// chunk), so a spooled message is never loaded whole. Data may hold the message instead when
	// it is in memory already.
	Body     io.ReaderAt
	Size     int64
	Data     []byte
	Local    []LocalRecipient
	Remote   []RemoteRecipient
	Received time.Time // internal date; zero means now
}

// LocalRecipient is one local copy.
type LocalRecipient struct {
	AccountID int64
	// SpecialUse picks the target mailbox by RFC 6154 attribute (`\Junk`); "" means INBOX.
	SpecialUse string
	// Prefix holds header lines only this copy gets (Return-Path, Delivered-To), CRLF-terminated.
	Prefix []byte
	Flags  []string
}

// RemoteRecipient is one address to relay to.
type RemoteRecipient struct {
	Address    string
	RequireTLS bool
	SMTPUTF8   bool
	EightBit   bool
	DSN        DSN // the recipient's NOTIFY and ORCPT with the message's RET and ENVID
}

// DeliveredCopy says where one local copy went.
type DeliveredCopy struct {
	AccountID, MailboxID int64
	UID                  uint32
}

// Deliver commits d durably. On nil error every copy is in its mailbox and every remote recipient
// is queued; on error nothing is.
func (s *Store) Deliver(ctx context.Context, d *Delivery) ([]DeliveredCopy, error) {
	if len(d.Local) == 0 && len(d.Remote) == 0 {
		return nil, errors.New("deliver: no recipients")
	}
	body, size := d.Body, d.Size
	if body == nil {
		body, size = bytes.NewReader(d.Data), int64(len(d.Data))
	}
	received := d.Received
	if received.IsZero() {
		received = time.Now()
	}
	var envelope, structure []byte
	if s.opts.Describe != nil && len(d.Local) > 0 {
		envelope, structure = s.opts.Describe(body, size) // outside the writer: parsing is the slow part
	}
	var copies []DeliveredCopy
	err := s.updateOnce(ctx, func(t *writeTx) error {
		copies = copies[:0]
		blobID, err := t.insertBlob(body, size)
		if err != nil {
			return err
		}
		seen := map[int64]bool{}
		for _, r := range d.Local {
			if seen[r.AccountID] {
				continue
			}
			seen[r.AccountID] = true
			mb, err := t.deliveryMailbox(r.AccountID, r.SpecialUse)
			if err != nil {
				return fmt.Errorf("deliver to account %d: %w", r.AccountID, err)
			}
			uid, err := t.insertMessage(mb, newMessage{
				blobID: blobID, size: int64(len(r.Prefix)) + size, prefix: r.Prefix,
				flags: r.Flags, date: received, envelope: envelope, structure: structure, origin: FromDelivery,
			})
			if err != nil {
				return fmt.Errorf("deliver to account %d: %w", r.AccountID, err)
			}
			copies = append(copies, DeliveredCopy{AccountID: r.AccountID, MailboxID: mb, UID: uid})
		}
		now := time.Now().Unix()
		for _, r := range d.Remote {
			domain := strings.ToLower(r.Address[strings.LastIndexByte(r.Address, '@')+1:])
			if _, err := t.Exec(`INSERT INTO queue (blob_id, mail_from, rcpt, domain, created, next_attempt,
				requiretls, smtputf8, eightbit, dsn_notify, dsn_orcpt, dsn_ret, dsn_envid)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				blobID, d.MailFrom, r.Address, domain, now, now, r.RequireTLS, r.SMTPUTF8, r.EightBit,
				r.DSN.Notify, r.DSN.ORcpt, r.DSN.Ret, r.DSN.EnvID); err != nil {
				return fmt.Errorf("queue for %s: %w", r.Address, err)
			}
		}
		if len(d.Remote) > 0 {
			t.Publish(Event{Kind: QueueDue})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return copies, nil
}

// deliveryMailbox finds the mailbox for a delivery: by special use, falling back to INBOX.
func (t *writeTx) deliveryMailbox(accountID int64, specialUse string) (int64, error) {
	var id int64
	if specialUse != "" {
		err := t.QueryRow("SELECT id FROM mailboxes WHERE account_id = ? AND special_use = ? ORDER BY id LIMIT 1",
			accountID, specialUse).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
	}
	err := t.QueryRow("SELECT id FROM mailboxes WHERE account_id = ? AND name = 'INBOX'", accountID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// INBOX always exists (RFC 9051 §5.1); recreate it if something removed it.
		mb, err := t.createMailbox(accountID, "INBOX", "")
		return mb.ID, err
	}
	return id, err
}

type newMessage struct {
	blobID              int64
	size                int64
	prefix              []byte
	flags               []string
	date                time.Time
	envelope, structure []byte
	origin              Origin
}

// insertMessage adds a message to a mailbox with the next UID and MODSEQ and publishes it.
func (t *writeTx) insertMessage(mailboxID int64, m newMessage) (uint32, error) {
	var accountID int64
	var uid uint32
	var modseq int64
	err := t.QueryRow(`UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
		WHERE id = ? RETURNING account_id, uidnext - 1, highestmodseq`, mailboxID).Scan(&accountID, &uid, &modseq)
	if err != nil {
		return 0, fmt.Errorf("allocate uid: %w", err)
	}
	if err := t.checkQuota(accountID, m.size); err != nil {
		return 0, err
	}
	flags := CanonicalFlags(m.flags)
	if m.prefix == nil {
		m.prefix = []byte{}
	}
	if _, err := t.Exec(`INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, prefix,
		blob_id, envelope, structure) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		mailboxID, uid, modseq, strings.Join(flags, " "), m.date.Unix(), m.size, m.prefix, m.blobID,
		m.envelope, m.structure); err != nil {
		return 0, fmt.Errorf("insert message: %w", err)
	}
	t.Publish(Event{Kind: MessageAdded, AccountID: accountID, MailboxID: mailboxID, UIDs: []uint32{uid}, Flags: flags, ModSeq: modseq, Origin: m.origin})
	return uid, nil
}
