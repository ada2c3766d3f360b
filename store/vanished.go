package store

import (
	"context"
	"fmt"
)

// publishExpunged records that uids left a mailbox at modseq (schema 11) and publishes the
// event. Every removal of messages from a mailbox (EXPUNGE, POP3 and admin deletes, MOVE's
// source, RENAME INBOX) goes through it, so QRESYNC's VANISHED (EARLIER) is exact.
func (t *writeTx) publishExpunged(accountID, mailboxID int64, uids []uint32, modseq int64) error {
	for _, uid := range uids {
		if _, err := t.Exec(`INSERT INTO vanished (mailbox_id, uid, modseq) VALUES (?, ?, ?)
			ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq`, mailboxID, uid, modseq); err != nil {
			return fmt.Errorf("record expunge of UID %d: %w", uid, err)
		}
	}
	t.Publish(Event{Kind: MessagesExpunged, AccountID: accountID, MailboxID: mailboxID, UIDs: uids, ModSeq: modseq})
	return nil
}

// VanishedSince returns, ascending, the UIDs expunged from a mailbox after modseq.
func (s *Store) VanishedSince(ctx context.Context, mailboxID, modseq int64) ([]uint32, error) {
	uids, err := column[uint32](s.db.QueryContext(ctx,
		"SELECT uid FROM vanished WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", mailboxID, modseq))
	if err != nil {
		return nil, fmt.Errorf("vanished from mailbox %d: %w", mailboxID, err)
	}
	return uids, nil
}

// ChangedSince returns, ascending, the UIDs of a mailbox's messages whose MODSEQ is above
// modseq: added or with flags changed since (RFC 7162 §3.1.4.1).
func (s *Store) ChangedSince(ctx context.Context, mailboxID, modseq int64) ([]uint32, error) {
	uids, err := column[uint32](s.db.QueryContext(ctx,
		"SELECT uid FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", mailboxID, modseq))
	if err != nil {
		return nil, fmt.Errorf("changed in mailbox %d: %w", mailboxID, err)
	}
	return uids, nil
}
