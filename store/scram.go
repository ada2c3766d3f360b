package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"mailstead/scram"
)

// scramSecret makes up stable salts for unknown users, so that a SCRAM exchange does not tell
// who has an account (RFC 5802 §9). It lives as long as the process.
type scramSecret struct {
	once sync.Once
	key  [32]byte
}

func (s *scramSecret) fakeSalt(name string) []byte {
	s.once.Do(func() { rand.Read(s.key[:]) })
	h := hmac.New(sha256.New, s.key[:])
	h.Write([]byte(strings.ToLower(name)))
	return h.Sum(nil)[:16]
}

// SCRAMCredentials returns the SCRAM-SHA-256 credentials of the account at address: the
// account's own key set first, then its app passwords'. For an unknown address, or an account
// that has none yet (created before schema 9 and not logged in since), it returns a made-up
// salt with no keys and no error, and a zero Account: the exchange then fails like a wrong
// password.
func (s *Store) SCRAMCredentials(ctx context.Context, address string) (Account, scram.Credentials, error) {
	fake := scram.Credentials{Salt: s.scram.fakeSalt(address), Iterations: scram.Iterations}
	canon, err := CanonicalAddress(address)
	if err != nil {
		return Account{}, fake, nil
	}
	a, err := s.AccountByAddress(ctx, canon)
	if errors.Is(err, ErrNotFound) {
		return Account{}, fake, nil
	}
	if err != nil {
		return Account{}, fake, fmt.Errorf("scram credentials of %s: %w", address, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT salt, iterations, stored_key, server_key FROM scram_sha256
		WHERE account_id = ? ORDER BY app_password_id IS NOT NULL, id`, a.ID)
	if err != nil {
		return Account{}, fake, fmt.Errorf("scram credentials of %s: %w", address, err)
	}
	defer rows.Close()
	var c scram.Credentials
	for rows.Next() {
		var salt []byte
		var iter int
		var k scram.Keys
		if err := rows.Scan(&salt, &iter, &k.StoredKey, &k.ServerKey); err != nil {
			return Account{}, fake, err
		}
		if c.Salt == nil {
			c.Salt, c.Iterations = salt, iter
		}
		if string(salt) == string(c.Salt) && iter == c.Iterations {
			c.Keys = append(c.Keys, k)
		}
	}
	if err := rows.Err(); err != nil {
		return Account{}, fake, err
	}
	if len(c.Keys) == 0 {
		return Account{}, fake, nil
	}
	return a, c, nil
}

// scramSchema is the migration that added scram_sha256; a store held at an older schema (tests
// of upgrades) derives no keys.
const scramSchema = 9

// setSCRAM replaces the key sets of one password of an account (appID 0: its own password) by
// those of the given forms of it, keeping the account's salt when it has one.
func (s *Store) setSCRAM(t *writeTx, accountID, appID int64, forms ...string) error {
	if s.opts.MaxSchema != 0 && s.opts.MaxSchema < scramSchema {
		return nil
	}
	var salt []byte
	iter := scram.Iterations
	err := t.QueryRow("SELECT salt, iterations FROM scram_sha256 WHERE account_id = ? ORDER BY id LIMIT 1",
		accountID).Scan(&salt, &iter)
	if errors.Is(err, sql.ErrNoRows) {
		salt, iter = scram.NewSalt(), scram.Iterations
	} else if err != nil {
		return fmt.Errorf("scram salt of account %d: %w", accountID, err)
	}
	app := sql.NullInt64{Int64: appID, Valid: appID != 0}
	if _, err := t.Exec("DELETE FROM scram_sha256 WHERE account_id = ? AND app_password_id IS ?", accountID, app); err != nil {
		return err
	}
	for _, pw := range forms {
		k, err := scram.Derive(pw, salt, iter)
		if err != nil {
			return err
		}
		if _, err := t.Exec(`INSERT INTO scram_sha256 (account_id, app_password_id, salt, iterations, stored_key, server_key)
			VALUES (?, ?, ?, ?, ?, ?)`, accountID, app, salt, iter, k.StoredKey, k.ServerKey); err != nil {
			return fmt.Errorf("scram keys of account %d: %w", accountID, err)
		}
	}
	return nil
}

// gainSCRAM gives an account that logged in with a password (appID 0) or an app password the
// SCRAM keys of it when it has none yet: accounts and app passwords from before schema 9 gain
// them at their first successful PLAIN or LOGIN. Best effort: a failure leaves SCRAM unusable
// for that password until the next login, and never fails the login itself.
func (s *Store) gainSCRAM(ctx context.Context, accountID, appID int64, password string) {
	if s.opts.MaxSchema != 0 && s.opts.MaxSchema < scramSchema {
		return
	}
	var n int
	app := sql.NullInt64{Int64: appID, Valid: appID != 0}
	if s.db.QueryRowContext(ctx, "SELECT count(*) FROM scram_sha256 WHERE account_id = ? AND app_password_id IS ?",
		accountID, app).Scan(&n) != nil || n > 0 {
		return
	}
	err := s.updateOnce(ctx, func(t *writeTx) error { return s.setSCRAM(t, accountID, appID, appPasswordForms(appID, password)...) })
	if err != nil {
		s.log.Warn("scram keys not derived", "account", accountID, "err", err)
	}
}

// appPasswordForms are the spellings of a password a client may hold: an app password as shown
// (groups of five) and as typed without spaces; an account's own password as it is.
func appPasswordForms(appID int64, pw string) []string {
	if appID == 0 {
		return []string{pw}
	}
	n := normalizeAppPassword(pw)
	var groups []string
	for i := 0; i < len(n); i += 5 {
		groups = append(groups, n[i:min(i+5, len(n))])
	}
	return []string{strings.Join(groups, " "), n}
}
