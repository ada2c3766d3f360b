package imap

import (
	"context"
	"time"

	"mailstead/scram"
	"mailstead/store"
)

// Store is what the IMAP server needs of the store: logins, mailboxes, messages, flags, quota,
// subscriptions and the event stream that feeds each session's view.
type Store interface {
	Append(ctx context.Context, mailboxID int64, msg []byte, flags []string, date time.Time) (uidValidity, uid uint32, err error)
	Authenticate(ctx context.Context, address, password string) (store.Account, error)
	ChangedSince(ctx context.Context, mailboxID, modseq int64) ([]uint32, error)
	ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error)
	CopyMessages(ctx context.Context, src, dst int64, uids []uint32) (store.CopyResult, error)
	CreateMailbox(ctx context.Context, accountID int64, name, specialUse string) (store.Mailbox, error)
	DeleteMailbox(ctx context.Context, accountID int64, name string) error
	Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error)
	FetchMeta(ctx context.Context, mailboxID int64, uids []uint32, describe bool, fn func(*store.MessageMeta) error) error
	MailboxByName(ctx context.Context, accountID int64, name string) (store.Mailbox, error)
	Mailboxes(ctx context.Context, accountID int64) ([]store.Mailbox, error)
	MessageData(ctx context.Context, messageID int64) ([]byte, error)
	MessageHeader(ctx context.Context, messageID int64) ([]byte, error)
	MoveMessages(ctx context.Context, src, dst int64, uids []uint32) (store.CopyResult, error)
	OpenMessage(ctx context.Context, messageID int64) (*store.MessageReader, error)
	OrphanSubscriptions(ctx context.Context, accountID int64) ([]string, error)
	Quota(ctx context.Context, accountID int64) (store.QuotaUsage, error)
	RenameMailbox(ctx context.Context, accountID int64, from, to string) error
	SCRAMCredentials(ctx context.Context, address string) (store.Account, scram.Credentials, error)
	SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error
	Snapshot(ctx context.Context, mailboxID int64) (store.MailboxSnapshot, error)
	Status(ctx context.Context, mailboxID int64) (store.MailboxStatus, error)
	StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op store.FlagOp, flags []string) (res []store.FlagResult, modseq int64, err error)
	StoreFlagsUnchangedSince(ctx context.Context, mailboxID int64, uids []uint32, op store.FlagOp,
		flags []string, unchangedSince int64) (res []store.FlagResult, modified []uint32, modseq int64, err error)
	Subscribe(fn func(store.Event)) (cancel func())
	VanishedSince(ctx context.Context, mailboxID, modseq int64) ([]uint32, error)
}

var _ Store = (*store.Store)(nil)
