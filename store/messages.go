package store

import (
	"context"
	"fmt"
	"time"
)

// Message is the stored metadata of one message in a mailbox.
type Message struct {
	ID           int64
	MailboxID    int64
	UID          uint32
	ModSeq       int64
	Flags        []string
	InternalDate time.Time
	Size         int64
}

// Messages lists a mailbox's messages in UID order (metadata only).
func (s *Store) Messages(ctx context.Context, mailboxID int64) ([]Message, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, mailbox_id, uid, modseq, flags, internal_date, size
		FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("list mailbox %d: %w", mailboxID, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var flags string
		var date int64
		if err := rows.Scan(&m.ID, &m.MailboxID, &m.UID, &m.ModSeq, &flags, &date, &m.Size); err != nil {
			return nil, err
		}
		m.Flags = parseFlags(flags)
		m.InternalDate = time.Unix(date, 0)
		out = append(out, m)
	}
	return out, rows.Err()
}

// MessageData returns the full stored bytes of a message: its own header prefix, then the shared
// body. It returns ErrNotFound once the message has been expunged.
func (s *Store) MessageData(ctx context.Context, messageID int64) ([]byte, error) {
	r, err := s.OpenMessage(ctx, messageID)
	if err != nil {
		return nil, err
	}
	data, err := r.readAll()
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", messageID, err)
	}
	return data, nil
}
