package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"golang.org/x/crypto/argon2"
	"strings"
	"time"
)

// Domain is a mail domain this server is the destination for.
type Domain struct {
	ID      int64
	Name    string
	Created time.Time
}

// Account is a mail user.
type Account struct {
	ID       int64
	DomainID int64
	Address  string
	IsAdmin  bool
	Quota    int64
	Created  time.Time
}

// Alias maps an address (or "@domain", the catch-all) to local accounts.
type Alias struct {
	Address string
	Targets []string
}

var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrNotOurDomain   = errors.New("not a local domain")
	ErrUnknownUser    = errors.New("no such user")
	ErrDomainNotEmpty = errors.New("domain still has accounts or aliases")
)

// defaultMailboxes are created with every account, with their RFC 6154 special-use attributes.
var defaultMailboxes = []struct{ name, use string }{
	{"INBOX", ""},
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{"Archive", `\Archive`},
}

// AddDomain adds a local domain with nothing in it (the operations layer adds a domain with its
// keys and postmaster alias through CreateDomain).
func (s *Store) AddDomain(ctx context.Context, name string) (Domain, error) {
	return s.CreateDomain(ctx, NewDomain{Name: name})
}

// Domains lists the local domains by name.
func (s *Store) Domains(ctx context.Context) ([]Domain, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, name, created FROM domains ORDER BY name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Domain
	for rows.Next() {
		var d Domain
		var created int64
		if err := rows.Scan(&d.ID, &d.Name, &created); err != nil {
			return nil, err
		}
		d.Created = time.Unix(created, 0)
		out = append(out, d)
	}
	return out, rows.Err()
}

// IsLocalDomain reports whether name (any case, U- or A-label) is one of ours.
func (s *Store) IsLocalDomain(ctx context.Context, name string) (bool, error) {
	name, err := CanonicalDomain(name)
	if err != nil {
		return false, nil
	}
	_, err = s.domainID(ctx, name)
	if errors.Is(err, ErrNotOurDomain) {
		return false, nil
	}
	return err == nil, err
}

func (s *Store) domainID(ctx context.Context, name string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, "SELECT id FROM domains WHERE name = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("domain %s: %w", name, ErrNotOurDomain)
	}
	return id, err
}

// RemoveDomain removes a domain that has no accounts or aliases left, so that removing a domain
// never silently deletes mail.
func (s *Store) RemoveDomain(ctx context.Context, name string) error {
	return s.DeleteDomain(ctx, DomainRemoval{Name: name})
}

// AddAccount creates an account with its default mailboxes. Its domain must exist, and no alias
// may have its address: an address is an account or an alias, never both.
func (s *Store) AddAccount(ctx context.Context, address, password string, admin bool) (Account, error) {
	hash, err := hashNewPassword(password)
	if err != nil {
		return Account{}, err
	}
	var a Account
	err = s.updateOnce(ctx, func(t *writeTx) error {
		if a, err = t.insertAccount(address, hash, admin); err != nil {
			return err
		}
		return s.setSCRAM(t, a.ID, 0, password)
	})
	return a, err
}

func hashNewPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	return HashPassword(password)
}

// insertAccount creates an account with its default mailboxes inside a write.
func (t *writeTx) insertAccount(address, hash string, admin bool) (Account, error) {
	address, err := CanonicalAddress(address)
	if err != nil {
		return Account{}, err
	}
	_, domain, _ := strings.Cut(address, "@")
	a := Account{Address: address, IsAdmin: admin, Created: time.Now().Truncate(time.Second)}
	if err := t.QueryRow("SELECT id FROM domains WHERE name = ?", domain).Scan(&a.DomainID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return a, fmt.Errorf("account %s: %w", address, ErrNotOurDomain)
		}
		return a, err
	}
	targets, err := column[string](t.Query(`SELECT ac.address FROM aliases al JOIN accounts ac ON ac.id = al.account_id
		WHERE al.address = ? ORDER BY 1`, address))
	if err != nil {
		return a, err
	}
	if len(targets) > 0 {
		return a, fmt.Errorf("account %s: %s is an alias (to %s); remove the alias first: %w",
			address, address, strings.Join(targets, ", "), ErrExists)
	}
	res, err := t.Exec(`INSERT INTO accounts (domain_id, address, password_hash, is_admin, created)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, a.DomainID, address, hash, admin, a.Created.Unix())
	if err != nil {
		return a, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return a, fmt.Errorf("account %s: %w", address, ErrExists)
	}
	if a.ID, err = res.LastInsertId(); err != nil {
		return a, err
	}
	for _, mb := range defaultMailboxes {
		if _, err := t.createMailbox(a.ID, mb.name, mb.use); err != nil {
			return a, err
		}
	}
	return a, nil
}

const accountColumns = "id, domain_id, address, is_admin, quota, created"

func scanAccount(sc interface{ Scan(...any) error }) (Account, error) {
	var a Account
	var created int64
	err := sc.Scan(&a.ID, &a.DomainID, &a.Address, &a.IsAdmin, &a.Quota, &created)
	a.Created = time.Unix(created, 0)
	return a, err
}

// Accounts lists every account by address.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+accountColumns+" FROM accounts ORDER BY address")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AccountByAddress finds an account by its address.
func (s *Store) AccountByAddress(ctx context.Context, address string) (Account, error) {
	address, err := CanonicalAddress(address)
	if err != nil {
		return Account{}, err
	}
	a, err := scanAccount(s.db.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE address = ?", address))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("account %s: %w", address, ErrNotFound)
	}
	return a, err
}

// AccountByID finds an account by id.
func (s *Store) AccountByID(ctx context.Context, id int64) (Account, error) {
	a, err := scanAccount(s.db.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("account %d: %w", id, ErrNotFound)
	}
	return a, err
}

// RemoveAccount deletes an account with all its mailboxes and messages.
//
// The only admin is never removed (ErrLastAdmin). maxMessages is how many messages the caller
// agreed to delete with the account (-1: any number); when it holds more, nothing is removed
// and the error is a *HoldsMailError saying how many and which aliases route to it.
func (s *Store) RemoveAccount(ctx context.Context, address string, maxMessages int64) error {
	a, err := s.AccountByAddress(ctx, address)
	if err != nil {
		return err
	}
	return s.updateOnce(ctx, func(t *writeTx) error {
		if err := t.keepAnAdmin(a.ID, a.Address); err != nil {
			return err
		}
		if maxMessages >= 0 {
			var n int64
			if err := t.QueryRow(holdingsQuery, a.ID).Scan(&n); err != nil {
				return err
			}
			if n > maxMessages {
				aliases, err := column[string](t.tx.QueryContext(t.ctx, "SELECT address FROM aliases WHERE account_id = ? ORDER BY address", a.ID))
				if err != nil {
					return err
				}
				return &HoldsMailError{Address: a.Address, Messages: n, Aliases: aliases}
			}
		}
		if _, err := t.Exec("DELETE FROM accounts WHERE id = ?", a.ID); err != nil {
			return err
		}
		t.Publish(Event{Kind: AccountChanged, AccountID: a.ID})
		return t.deleteUnreferencedBlobs()
	})
}

// SetPassword replaces an account's password.
func (s *Store) SetPassword(ctx context.Context, address, password string) error {
	a, err := s.AccountByAddress(ctx, address)
	if err != nil {
		return err
	}
	hash, err := hashNewPassword(password)
	if err != nil {
		return err
	}
	return s.updateOnce(ctx, func(t *writeTx) error {
		if _, err := t.Exec("UPDATE accounts SET password_hash = ? WHERE id = ?", hash, a.ID); err != nil {
			return err
		}
		if err := s.setSCRAM(t, a.ID, 0, password); err != nil {
			return err
		}
		t.Publish(Event{Kind: AccountChanged, AccountID: a.ID})
		return nil
	})
}

// SetAdmin grants or revokes the admin flag; the only admin is never demoted (ErrLastAdmin).
func (s *Store) SetAdmin(ctx context.Context, address string, admin bool) error {
	a, err := s.AccountByAddress(ctx, address)
	if err != nil {
		return err
	}
	return s.updateOnce(ctx, func(t *writeTx) error {
		if !admin {
			if err := t.keepAnAdmin(a.ID, a.Address); err != nil {
				return err
			}
		}
		_, err := t.Exec("UPDATE accounts SET is_admin = ? WHERE id = ?", admin, a.ID)
		return err
	})
}

// Authenticate checks an address and password (the account's own or one of its app passwords). It
// returns ErrAuthFailed for an unknown address or a wrong password, after the same amount of work
// for both.
func (s *Store) Authenticate(ctx context.Context, address, password string) (Account, error) {
	return s.authenticate(ctx, address, password, true)
}

// AuthenticatePrimary checks an address against the account's own password only, never an app
// password: the web pages use it, because an app password sits in a phone and must not be able to
// change the account's password or make more app passwords.
func (s *Store) AuthenticatePrimary(ctx context.Context, address, password string) (Account, error) {
	return s.authenticate(ctx, address, password, false)
}

func (s *Store) authenticate(ctx context.Context, address, password string, appPasswords bool) (Account, error) {
	var hash string
	var a Account
	canon, err := CanonicalAddress(address)
	if err == nil {
		var created int64
		err = s.db.QueryRowContext(ctx, "SELECT "+accountColumns+", password_hash FROM accounts WHERE address = ?", canon).
			Scan(&a.ID, &a.DomainID, &a.Address, &a.IsAdmin, &a.Quota, &created, &hash)
		a.Created = time.Unix(created, 0)
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) && !errors.Is(err, ErrBadAddress) {
		return Account{}, fmt.Errorf("authenticate %s: %w", address, err)
	}
	if hash != "" {
		// An app password is a cheap hash lookup; trying it first spares phones, which log in
		// often and hold app passwords, the deliberately slow argon2id check (and its budget).
		if appPasswords {
			if id, ok := s.appPasswordOK(ctx, a.ID, password); ok {
				s.gainSCRAM(ctx, a.ID, id, password)
				return a, nil
			}
		}
		if s.auth.hit(hash, password) {
			return a, nil
		}
	}
	release, err := s.hashes.acquire(ctx)
	if err != nil {
		return Account{}, fmt.Errorf("authenticate %s: %w", address, err)
	}
	defer release()
	if hash == "" {
		checkPassword(dummyHash, password) // same cost as a real check: no user enumeration by timing
		return Account{}, ErrAuthFailed
	}
	if !checkPassword(hash, password) {
		return Account{}, ErrAuthFailed
	}
	s.auth.remember(hash, password)
	s.gainSCRAM(ctx, a.ID, 0, password)
	return a, nil
}

// dummyHash has the parameters of HashPassword's hashes, so checking against it costs what a
// real check does; no password matches it. It is written out rather than computed: computing it
// at start-up took argon2id's 19 MiB in every process, the CLI's too, for nothing.
var dummyHash = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime,
	argonThreads, "bWFpbHN0ZWFkLWR1bW15IQ", "bm8tcGFzc3dvcmQtaGFzaGVzLXRvLXRoaXMta2V5ISE")

// AddAlias makes alias deliver to each target account. alias may be "@domain" for a catch-all.
// No account may have the alias's address: an address is an account or an alias, never both.
func (s *Store) AddAlias(ctx context.Context, alias string, targets []string) error {
	return s.updateOnce(ctx, func(t *writeTx) error { return t.insertAlias(alias, targets) })
}

func (t *writeTx) insertAlias(alias string, targets []string) error {
	canon, domain, err := canonicalAlias(alias)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("alias needs at least one target")
	}
	var domainID int64
	if err := t.QueryRow("SELECT id FROM domains WHERE name = ?", domain).Scan(&domainID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("alias %s: %w", canon, ErrNotOurDomain)
		}
		return err
	}
	var n int
	if err := t.QueryRow("SELECT count(*) FROM accounts WHERE address = ?", canon).Scan(&n); err != nil || n > 0 {
		return errors.Join(err, fmt.Errorf("alias %s: %s is an account; remove the account first: %w", canon, canon, ErrExists))
	}
	for _, target := range targets {
		target, err := CanonicalAddress(target)
		if err != nil {
			return err
		}
		var accountID int64
		if err := t.QueryRow("SELECT id FROM accounts WHERE address = ?", target).Scan(&accountID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("alias target %s: %w (targets must be local accounts)", target, ErrNotFound)
			}
			return err
		}
		if _, err := t.Exec(`INSERT INTO aliases (address, domain_id, account_id) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, canon, domainID, accountID); err != nil {
			return err
		}
	}
	return nil
}

func canonicalAlias(alias string) (canon, domain string, err error) {
	if d, ok := strings.CutPrefix(alias, "@"); ok {
		domain, err = CanonicalDomain(d)
		return "@" + domain, domain, err
	}
	canon, err = CanonicalAddress(alias)
	_, domain, _ = strings.Cut(canon, "@")
	return canon, domain, err
}

// RemoveAlias removes targets from alias, or the whole alias when no targets are given.
func (s *Store) RemoveAlias(ctx context.Context, alias string, targets []string) error {
	canon, _, err := canonicalAlias(alias)
	if err != nil {
		return err
	}
	return s.updateOnce(ctx, func(t *writeTx) error {
		var res sql.Result
		if len(targets) == 0 {
			res, err = t.Exec("DELETE FROM aliases WHERE address = ?", canon)
		} else {
			for _, target := range targets {
				target, err := CanonicalAddress(target)
				if err != nil {
					return err
				}
				res, err = t.Exec(`DELETE FROM aliases WHERE address = ? AND account_id =
					(SELECT id FROM accounts WHERE address = ?)`, canon, target)
				if err != nil {
					return err
				}
			}
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("alias %s: %w", canon, ErrNotFound)
		}
		return nil
	})
}

// Aliases lists every alias with its targets.
func (s *Store) Aliases(ctx context.Context) ([]Alias, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT al.address, ac.address FROM aliases al
		JOIN accounts ac ON ac.id = al.account_id ORDER BY al.address, ac.address`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Alias
	for rows.Next() {
		var addr, target string
		if err := rows.Scan(&addr, &target); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Address != addr {
			out = append(out, Alias{Address: addr})
		}
		out[len(out)-1].Targets = append(out[len(out)-1].Targets, target)
	}
	return out, rows.Err()
}

// LookupRecipient finds the accounts that mail to local@domain goes to: the account of that
// address, else the alias, else the same for the address without its +tag (plus-addressing),
// else the domain's catch-all. local and domain must be canonical (see SplitAddress).
// It returns ErrNotOurDomain or ErrUnknownUser when there is no such recipient.
func (s *Store) LookupRecipient(ctx context.Context, local, domain string) ([]int64, error) {
	if _, err := s.domainID(ctx, domain); err != nil {
		return nil, err
	}
	candidates := []string{local + "@" + domain}
	if base, _, ok := strings.Cut(local, "+"); ok && base != "" {
		candidates = append(candidates, base+"@"+domain)
	}
	candidates = append(candidates, "@"+domain)
	for _, addr := range candidates {
		ids, err := s.accountsFor(ctx, addr)
		if err != nil {
			return nil, fmt.Errorf("lookup %s: %w", addr, err)
		}
		if len(ids) > 0 {
			return ids, nil
		}
	}
	return nil, fmt.Errorf("%s@%s: %w", local, domain, ErrUnknownUser)
}

func (s *Store) accountsFor(ctx context.Context, addr string) ([]int64, error) {
	return column[int64](s.db.QueryContext(ctx, `SELECT id FROM accounts WHERE address = ?1
		UNION SELECT account_id FROM aliases WHERE address = ?1 ORDER BY 1`, addr))
}

// OwnedAddresses lists the addresses an account may send as: its own and every alias it receives
// (catch-alls excluded: owning a catch-all does not make every address of the domain yours).
func (s *Store) OwnedAddresses(ctx context.Context, accountID int64) ([]string, error) {
	return column[string](s.db.QueryContext(ctx, `SELECT address FROM accounts WHERE id = ?1
		UNION SELECT address FROM aliases WHERE account_id = ?1 AND address NOT LIKE '@%' ORDER BY 1`, accountID))
}
