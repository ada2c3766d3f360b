package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NewDomain is everything a domain is created with, stored in one transaction so that a domain
// never exists without it.
type NewDomain struct {
	Name string
	// Postmaster is the account postmaster@Name delivers to (RFC 5321 §4.5.1); "" makes no alias.
	// An account or alias that already has the address is left as it is.
	Postmaster string
	// KV is key material made for the domain (its DKIM keys), stored with it.
	KV map[string][]byte
}

// CreateDomain adds a local domain with its postmaster alias and key material, all or nothing.
func (s *Store) CreateDomain(ctx context.Context, nd NewDomain) (Domain, error) {
	var d Domain
	err := s.updateOnce(ctx, func(t *writeTx) error {
		var err error
		d, err = t.createDomain(nd)
		return err
	})
	return d, err
}

func (t *writeTx) createDomain(nd NewDomain) (Domain, error) {
	name, err := CanonicalDomain(nd.Name)
	if err != nil {
		return Domain{}, err
	}
	d := Domain{Name: name, Created: time.Now().Truncate(time.Second)}
	res, err := t.Exec("INSERT INTO domains (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING", name, d.Created.Unix())
	if err != nil {
		return d, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return d, fmt.Errorf("domain %s: %w", name, ErrExists)
	}
	if d.ID, err = res.LastInsertId(); err != nil {
		return d, err
	}
	for k, v := range nd.KV {
		if _, err := t.Exec(`INSERT INTO kv (key, value, updated) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`, k, v, d.Created.Unix()); err != nil {
			return d, fmt.Errorf("domain %s: key %s: %w", name, k, err)
		}
	}
	if nd.Postmaster != "" {
		if err := t.insertAlias("postmaster@"+name, []string{nd.Postmaster}); err != nil {
			return d, fmt.Errorf("domain %s: postmaster alias: %w", name, err)
		}
	}
	return d, nil
}

// DomainRemoval says what goes with a domain when it is removed.
type DomainRemoval struct {
	Name string
	// KVPrefixes are the kv keys made for the domain (its DKIM keys), removed with it.
	KVPrefixes []string
}

// DeleteDomain removes a domain and what was made with it: its postmaster alias and its key
// material. A domain that still has accounts or other aliases is refused (ErrDomainNotEmpty), so
// that removing a domain never silently deletes mail.
func (s *Store) DeleteDomain(ctx context.Context, dr DomainRemoval) error {
	name, err := CanonicalDomain(dr.Name)
	if err != nil {
		return err
	}
	return s.updateOnce(ctx, func(t *writeTx) error {
		var id int64
		err := t.QueryRow("SELECT id FROM domains WHERE name = ?", name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		left, err := column[string](t.Query(`SELECT address FROM accounts WHERE domain_id = ?1
			UNION SELECT address FROM aliases WHERE domain_id = ?1 AND address != ?2 ORDER BY 1`, id, "postmaster@"+name))
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("domain %s still has %s; remove them first: %w", name, strings.Join(left, ", "), ErrDomainNotEmpty)
		}
		if _, err := t.Exec("DELETE FROM aliases WHERE domain_id = ?", id); err != nil {
			return err
		}
		for _, p := range dr.KVPrefixes {
			if _, err := t.Exec("DELETE FROM kv WHERE substr(key, 1, ?) = ?", len(p), p); err != nil {
				return err
			}
		}
		_, err = t.Exec("DELETE FROM domains WHERE id = ?", id)
		return err
	})
}

// ErrAlreadySetUp refuses a second setup of a data directory.
var ErrAlreadySetUp = errors.New("already set up")

// Setup is the first configuration of an empty data directory.
type Setup struct {
	Domain   NewDomain // its Postmaster field is ignored: Postmaster says
	Admin    string
	Password string
	// Postmaster routes postmaster@ the domain to the admin account.
	Postmaster bool
	// Settings are stored with the rest (the hostname, the spent setup token).
	Settings map[string]string
}

// RunSetup stores a setup in one transaction: the settings, the domain with its keys, the admin
// account and the postmaster alias, or nothing at all. A directory that has a domain or an
// account already is refused with ErrAlreadySetUp and left unchanged.
func (s *Store) RunSetup(ctx context.Context, su Setup) (Account, error) {
	hash, err := hashNewPassword(su.Password)
	if err != nil {
		return Account{}, err
	}
	var a Account
	err = s.updateOnce(ctx, func(t *writeTx) error {
		var n int
		if err := t.QueryRow("SELECT (SELECT count(*) FROM domains) + (SELECT count(*) FROM accounts)").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("this data directory is %w (it has domains or accounts); change it with the domain, account and settings commands", ErrAlreadySetUp)
		}
		for k, v := range su.Settings {
			if err := t.putSetting(k, v); err != nil {
				return err
			}
		}
		nd := su.Domain
		nd.Postmaster = ""
		if _, err := t.createDomain(nd); err != nil {
			return err
		}
		if a, err = t.insertAccount(su.Admin, hash, true); err != nil {
			return err
		}
		if err := s.setSCRAM(t, a.ID, 0, su.Password); err != nil {
			return err
		}
		if su.Postmaster {
			name, _ := CanonicalDomain(nd.Name)
			if !strings.EqualFold(a.Address, "postmaster@"+name) {
				return t.insertAlias("postmaster@"+name, []string{a.Address})
			}
		}
		return nil
	})
	return a, err
}
