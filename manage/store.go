package manage

import (
	"context"
	"io"

	"mailstead/delivery"
	"mailstead/store"
)

// Store is what the operations layer needs of the store: every change an operator can make,
// the settings, the kv table (DKIM keys) and import through delivery.
type Store interface {
	delivery.ImportStore
	Accounts(ctx context.Context) ([]store.Account, error)
	AddAccount(ctx context.Context, address, password string, admin bool) (store.Account, error)
	AddAlias(ctx context.Context, alias string, targets []string) error
	AddAppPassword(ctx context.Context, accountID int64, name string) (string, store.AppPassword, error)
	CreateAPIToken(ctx context.Context, accountID int64, name string) (string, store.APIToken, error)
	CreateDomain(ctx context.Context, nd store.NewDomain) (store.Domain, error)
	DeleteDomain(ctx context.Context, dr store.DomainRemoval) error
	EndWebSessions(ctx context.Context, accountID int64, keep string) error
	Holdings(ctx context.Context, address string) (store.AccountHoldings, error)
	IsLocalDomain(ctx context.Context, name string) (bool, error)
	KVKeys(ctx context.Context, prefix string) ([]string, error)
	PutKV(ctx context.Context, key string, value []byte) error
	QueueRemove(ctx context.Context, id int64) (int, error)
	QueueRetry(ctx context.Context, id int64) (int, error)
	RemoveAPIToken(ctx context.Context, accountID, id int64) error
	RemoveAccount(ctx context.Context, address string, maxMessages int64) error
	RemoveAlias(ctx context.Context, alias string, targets []string) error
	RemoveAppPassword(ctx context.Context, accountID, id int64) error
	RunSetup(ctx context.Context, su store.Setup) (store.Account, error)
	SetAdmin(ctx context.Context, address string, admin bool) error
	SetJunkSettings(ctx context.Context, accountID int64, enabled bool, threshold float64) error
	SetPassword(ctx context.Context, address, password string) error
	SetQuota(ctx context.Context, address string, quota int64) error
	SetSetting(ctx context.Context, key, value string) error
	SettingValue(ctx context.Context, key string) (value string, ok bool, err error)
	WriteBackup(ctx context.Context, w io.Writer) error
}

var _ Store = (*store.Store)(nil)
