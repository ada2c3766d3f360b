package queue

import (
	"context"
	"time"

	"mailstead/delivery"
	defs "mailstead/settings"
	"mailstead/store"
)

// Store is what the queue needs of the store: its own rows, the messages' bytes, the kv table
// (reports), settings, events that wake it, and delivery's writes for DSNs. *store.Store
// satisfies it.
type Store interface {
	delivery.Store
	defs.Source
	GetKV(ctx context.Context, key string) ([]byte, error)
	PutKV(ctx context.Context, key string, value []byte) error
	QueueClaim(ctx context.Context, c store.QueueClaim) ([]store.QueueEntry, error)
	QueueBody(ctx context.Context, blobID int64) (*store.MessageReader, error)
	QueueDefer(ctx context.Context, ids []int64, lastError, host string, next time.Time) error
	QueueDone(ctx context.Context, ids ...int64) error
	QueueMarkDelayNotified(ctx context.Context, ids ...int64) error
	QueueNextAttempt(ctx context.Context) (next time.Time, ok bool, err error)
	QueueReleaseLeases(ctx context.Context, owner string) (int, error)
	Subscribe(fn func(store.Event)) (cancel func())
}

var _ Store = (*store.Store)(nil)
