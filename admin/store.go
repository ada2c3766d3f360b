package admin

import (
	"context"
	"time"

	"mailstead/manage"
	"mailstead/store"
)

// Store is what the admin pages and API need of the store: sign-in and web sessions, the
// listings and dashboards they show, and the operations layer's own store for the changes.
type Store interface {
	manage.Store
	APITokenAccount(ctx context.Context, token string) (store.Account, error)
	APITokens(ctx context.Context, accountID int64) ([]store.APIToken, error)
	Aliases(ctx context.Context) ([]store.Alias, error)
	AppPasswords(ctx context.Context, accountID int64) ([]store.AppPassword, error)
	AuthenticatePrimary(ctx context.Context, address, password string) (store.Account, error)
	CountMailEvents(ctx context.Context, since time.Time) (map[string]int64, error)
	CreateWebSession(ctx context.Context, accountID int64, ttl time.Duration) (string, error)
	Dir() string
	Domains(ctx context.Context) ([]store.Domain, error)
	EndWebSession(ctx context.Context, token string) error
	JunkFiled(ctx context.Context, accountID int64, days int) ([]store.JunkDay, error)
	JunkSettingsOf(ctx context.Context, accountID int64) (store.JunkSettings, error)
	QueueBody(ctx context.Context, blobID int64) (*store.MessageReader, error)
	QueueList(ctx context.Context) ([]store.QueueEntry, error)
	RecentMailEvents(ctx context.Context, kind string, limit int) ([]store.MailEvent, error)
	WebSession(ctx context.Context, token string) (store.Account, error)
}

var _ Store = (*store.Store)(nil)
