package manage

import (
	"context"
	"strings"

	"mailstead/store"
)

// NewAccount is an account to create.
type NewAccount struct {
	Address  string
	Password string
	Admin    bool
	Quota    int64 // bytes; 0: unlimited
}

// AddAccount creates an account with its default mailboxes. An address that is an alias is
// refused (the store names the alias).
func (o *Ops) AddAccount(ctx context.Context, na NewAccount) (store.Account, error) {
	if err := CheckPassword(na.Password); err != nil {
		return store.Account{}, err
	}
	if na.Quota < 0 {
		return store.Account{}, invalid("quota", "give a number of bytes, 0 for unlimited")
	}
	a, err := o.st.AddAccount(ctx, strings.TrimSpace(na.Address), na.Password, na.Admin)
	if err != nil {
		return a, err
	}
	if na.Quota > 0 {
		if err := o.st.SetQuota(ctx, a.Address, na.Quota); err != nil {
			return a, err
		}
		a.Quota = na.Quota
	}
	return a, nil
}

// RemoveAccount is a removal and what its caller agreed to lose with it.
type RemoveAccount struct {
	Address string
	// Force removes the account whatever mail it holds (the CLI's --force).
	Force bool
	// ConfirmMessages is the message count the person was shown and agreed to delete (a page,
	// the API); a removal that would delete more is refused with a *store.HoldsMailError.
	ConfirmMessages int64
}

// RemoveAccount deletes an account with all its mail, its aliases' routes to it, its app
// passwords, API tokens and web sessions, and returns what went with it. Every path comes
// here, and the store enforces the two rules in the removal's transaction: the only admin is
// never removed (store.ErrLastAdmin), and an account holding mail goes only with Force or with
// ConfirmMessages covering its messages (else a *store.HoldsMailError names the count and the
// aliases, for the caller to ask).
func (o *Ops) RemoveAccount(ctx context.Context, p RemoveAccount) (store.AccountHoldings, error) {
	h, err := o.st.Holdings(ctx, p.Address)
	if err != nil {
		return h, err
	}
	limit := p.ConfirmMessages
	if p.Force {
		limit = -1
	} else if limit < 0 {
		limit = 0
	}
	if err := o.st.RemoveAccount(ctx, p.Address, limit); err != nil {
		return h, err
	}
	o.log.Info("account removed", "address", p.Address, "messages", h.Messages, "aliases", h.Aliases)
	return h, nil
}

// SetPassword replaces an account's password; the account's other web sessions end except keep
// (the token of the session making the change, or "").
func (o *Ops) SetPassword(ctx context.Context, address, password, keep string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	if err := o.st.SetPassword(ctx, address, password); err != nil {
		return err
	}
	a, err := o.st.AccountByAddress(ctx, address)
	if err != nil {
		return err
	}
	return o.st.EndWebSessions(ctx, a.ID, keep)
}

// SetAdmin grants or revokes the admin flag; the only admin keeps it (store.ErrLastAdmin).
func (o *Ops) SetAdmin(ctx context.Context, address string, admin bool) error {
	return o.st.SetAdmin(ctx, address, admin)
}

// SetQuota sets an account's quota in bytes (0: unlimited).
func (o *Ops) SetQuota(ctx context.Context, address string, quota int64) error {
	if quota < 0 {
		return invalid("quota", "give a number of bytes, 0 for unlimited")
	}
	return o.st.SetQuota(ctx, address, quota)
}

// AddAppPassword makes a new app password for an account; the password is shown once.
func (o *Ops) AddAppPassword(ctx context.Context, accountID int64, name string) (string, store.AppPassword, error) {
	return o.st.AddAppPassword(ctx, accountID, strings.TrimSpace(name))
}

// RemoveAppPassword revokes one app password of an account.
func (o *Ops) RemoveAppPassword(ctx context.Context, accountID, id int64) error {
	return o.st.RemoveAppPassword(ctx, accountID, id)
}

// AddAPIToken makes an API token for an admin account; the token is shown once.
func (o *Ops) AddAPIToken(ctx context.Context, accountID int64, name string) (string, store.APIToken, error) {
	return o.st.CreateAPIToken(ctx, accountID, strings.TrimSpace(name))
}

// RemoveAPIToken revokes one API token of an account.
func (o *Ops) RemoveAPIToken(ctx context.Context, accountID, id int64) error {
	return o.st.RemoveAPIToken(ctx, accountID, id)
}

// AddAlias routes alias ("@domain": the catch-all) to local accounts. An address that is an
// account is refused (the store names it).
func (o *Ops) AddAlias(ctx context.Context, alias string, targets []string) error {
	if len(targets) == 0 {
		return invalid("targets", "give at least one local account")
	}
	return o.st.AddAlias(ctx, strings.TrimSpace(alias), targets)
}

// RemoveAlias removes targets from alias, or the whole alias when targets is empty.
func (o *Ops) RemoveAlias(ctx context.Context, alias string, targets []string) error {
	return o.st.RemoveAlias(ctx, strings.TrimSpace(alias), targets)
}

// QueueRetry makes entry id (0: every entry) due now; it returns how many.
func (o *Ops) QueueRetry(ctx context.Context, id int64) (int, error) {
	if id < 0 {
		return 0, invalid("id", "give a queue id")
	}
	return o.st.QueueRetry(ctx, id)
}

// QueueRemove drops entry id (0: every entry) without delivering or bouncing it.
func (o *Ops) QueueRemove(ctx context.Context, id int64) (int, error) {
	if id < 0 {
		return 0, invalid("id", "give a queue id")
	}
	return o.st.QueueRemove(ctx, id)
}

// RefreshCerts asks the running server's certificate manager to check every name now.
func (o *Ops) RefreshCerts() error {
	if o.cfg.Certs == nil {
		return ErrNotRunning
	}
	o.cfg.Certs.Refresh()
	return nil
}
