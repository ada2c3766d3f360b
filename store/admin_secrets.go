package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file holds the secrets of the admin and user pages: app passwords (accepted by
// Authenticate for mail clients), web sessions and API tokens. Each is a random string handed
// out once; only its SHA-256 hash is stored, so a copy of the database does not log anyone in.

// secretAlphabet has no look-alike letters (no 0/O, 1/l/I), so a person can type an app password
// from one screen into another.
const secretAlphabet = "abcdefghijkmnpqrstuvwxyz23456789"

// NewSecret returns a random string of n letters from secretAlphabet (5 bits each).
func NewSecret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = secretAlphabet[int(b[i])%len(secretAlphabet)] // 256 is a multiple of 32: no bias
	}
	return string(b)
}

func secretHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// AppPassword describes one app password (never the password itself).
type AppPassword struct {
	ID       int64
	Name     string
	Created  time.Time
	LastUsed time.Time // zero when never used
}

// appPasswordLen is 20 letters, 100 bits: out of reach of guessing, so a fast hash is enough.
const appPasswordLen = 20

// AddAppPassword creates an app password for the account and returns it, grouped in fives for
// reading (spaces are ignored when it is checked). It is shown once and never stored in clear.
func (s *Store) AddAppPassword(ctx context.Context, accountID int64, name string) (string, AppPassword, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "app password"
	}
	secret := NewSecret(appPasswordLen)
	ap := AppPassword{Name: name, Created: time.Now().Truncate(time.Second)}
	err := s.updateOnce(ctx, func(t *writeTx) error {
		res, err := t.Exec("INSERT INTO app_passwords (account_id, name, hash, created) VALUES (?, ?, ?, ?)",
			accountID, name, secretHash(secret), ap.Created.Unix())
		if err != nil {
			return err
		}
		if ap.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return s.setSCRAM(t, accountID, ap.ID, appPasswordForms(ap.ID, secret)...)
	})
	if err != nil {
		return "", AppPassword{}, fmt.Errorf("add app password for account %d: %w", accountID, err)
	}
	var grouped []string
	for i := 0; i < len(secret); i += 5 {
		grouped = append(grouped, secret[i:i+5])
	}
	return strings.Join(grouped, " "), ap, nil
}

// AppPasswords lists the account's app passwords, newest first.
func (s *Store) AppPasswords(ctx context.Context, accountID int64) ([]AppPassword, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created, last_used FROM app_passwords
		WHERE account_id = ? ORDER BY created DESC, id DESC`, accountID)
	if err != nil {
		return nil, fmt.Errorf("app passwords of account %d: %w", accountID, err)
	}
	defer rows.Close()
	var out []AppPassword
	for rows.Next() {
		var ap AppPassword
		var created, used int64
		if err := rows.Scan(&ap.ID, &ap.Name, &created, &used); err != nil {
			return nil, err
		}
		ap.Created = time.Unix(created, 0)
		if used != 0 {
			ap.LastUsed = time.Unix(used, 0)
		}
		out = append(out, ap)
	}
	return out, rows.Err()
}

// RemoveAppPassword revokes one app password of the account.
func (s *Store) RemoveAppPassword(ctx context.Context, accountID, id int64) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		res, err := t.Exec("DELETE FROM app_passwords WHERE id = ? AND account_id = ?", id, accountID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("app password %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// normalizeAppPassword drops the spaces of the grouped form and lower-cases it, as phones
// capitalise the first letter typed.
func normalizeAppPassword(pw string) string {
	return strings.ToLower(strings.ReplaceAll(pw, " ", ""))
}

// appPasswordOK reports whether pw is one of the account's app passwords, with which a phone logs
// in to IMAP, POP3 and submission (Authenticate tries it before the account's own password).
func (s *Store) appPasswordOK(ctx context.Context, accountID int64, pw string) (id int64, ok bool) {
	pw = normalizeAppPassword(pw)
	if len(pw) != appPasswordLen {
		return 0, false
	}
	err := s.db.QueryRowContext(ctx, "SELECT id FROM app_passwords WHERE account_id = ? AND hash = ?",
		accountID, secretHash(pw)).Scan(&id)
	if err != nil {
		return 0, false
	}
	// Last use is shown on the user page; a busy phone need not cost a commit per login.
	var used int64
	if s.db.QueryRowContext(ctx, "SELECT last_used FROM app_passwords WHERE id = ?", id).Scan(&used) == nil &&
		time.Since(time.Unix(used, 0)) > time.Hour {
		_ = s.updateOnce(ctx, func(t *writeTx) error {
			_, err := t.Exec("UPDATE app_passwords SET last_used = ? WHERE id = ?", time.Now().Unix(), id)
			return err
		})
	}
	return id, true
}

// SetQuota sets an account's quota in bytes; 0 means unlimited.
func (s *Store) SetQuota(ctx context.Context, address string, quota int64) error {
	if quota < 0 {
		return errors.New("quota must not be negative")
	}
	a, err := s.AccountByAddress(ctx, address)
	if err != nil {
		return err
	}
	return s.updateOnce(ctx, func(t *writeTx) error {
		_, err := t.Exec("UPDATE accounts SET quota = ? WHERE id = ?", quota, a.ID)
		if err == nil {
			t.Publish(Event{Kind: AccountChanged, AccountID: a.ID})
		}
		return err
	})
}

// CreateWebSession starts a web session for the account and returns its token (the cookie).
func (s *Store) CreateWebSession(ctx context.Context, accountID int64, ttl time.Duration) (string, error) {
	token := NewSecret(40)
	now := time.Now()
	err := s.updateOnce(ctx, func(t *writeTx) error {
		// Expired sessions go whenever a new one starts: the table stays small without a sweeper.
		if _, err := t.Exec("DELETE FROM web_sessions WHERE expires < ?", now.Unix()); err != nil {
			return err
		}
		_, err := t.Exec("INSERT INTO web_sessions (hash, account_id, created, expires) VALUES (?, ?, ?, ?)",
			secretHash(token), accountID, now.Unix(), now.Add(ttl).Unix())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create web session: %w", err)
	}
	return token, nil
}

// WebSession returns the account of a live session token, or ErrNotFound.
func (s *Store) WebSession(ctx context.Context, token string) (Account, error) {
	if token == "" {
		return Account{}, ErrNotFound
	}
	a, err := scanAccount(s.db.QueryRowContext(ctx, `SELECT a.id, a.domain_id, a.address, a.is_admin, a.quota, a.created
		FROM web_sessions w JOIN accounts a ON a.id = w.account_id WHERE w.hash = ? AND w.expires >= ?`,
		secretHash(token), time.Now().Unix()))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("web session: %w", ErrNotFound)
	}
	return a, err
}

// EndWebSession logs a session out.
func (s *Store) EndWebSession(ctx context.Context, token string) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		_, err := t.Exec("DELETE FROM web_sessions WHERE hash = ?", secretHash(token))
		return err
	})
}

// EndWebSessions logs every session of an account out, except the one with token keep (may be
// empty): after a password change, other browsers must log in again.
func (s *Store) EndWebSessions(ctx context.Context, accountID int64, keep string) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		_, err := t.Exec("DELETE FROM web_sessions WHERE account_id = ? AND hash != ?", accountID, secretHash(keep))
		return err
	})
}

// APIToken describes one API token (never the token itself).
type APIToken struct {
	ID       int64
	Name     string
	Created  time.Time
	LastUsed time.Time
}

// CreateAPIToken makes an API token for an account and returns it; it is shown once.
func (s *Store) CreateAPIToken(ctx context.Context, accountID int64, name string) (string, APIToken, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "api token"
	}
	token := "ms_" + NewSecret(40)
	at := APIToken{Name: name, Created: time.Now().Truncate(time.Second)}
	err := s.updateOnce(ctx, func(t *writeTx) error {
		res, err := t.Exec("INSERT INTO api_tokens (account_id, name, hash, created) VALUES (?, ?, ?, ?)",
			accountID, name, secretHash(token), at.Created.Unix())
		if err != nil {
			return err
		}
		at.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return "", APIToken{}, fmt.Errorf("create api token: %w", err)
	}
	return token, at, nil
}

// APITokens lists an account's API tokens, newest first.
func (s *Store) APITokens(ctx context.Context, accountID int64) ([]APIToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created, last_used FROM api_tokens
		WHERE account_id = ? ORDER BY created DESC, id DESC`, accountID)
	if err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		var at APIToken
		var created, used int64
		if err := rows.Scan(&at.ID, &at.Name, &created, &used); err != nil {
			return nil, err
		}
		at.Created = time.Unix(created, 0)
		if used != 0 {
			at.LastUsed = time.Unix(used, 0)
		}
		out = append(out, at)
	}
	return out, rows.Err()
}

// RemoveAPIToken revokes one API token of the account.
func (s *Store) RemoveAPIToken(ctx context.Context, accountID, id int64) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		res, err := t.Exec("DELETE FROM api_tokens WHERE id = ? AND account_id = ?", id, accountID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("api token %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// APITokenAccount returns the account an API token belongs to, or ErrNotFound.
func (s *Store) APITokenAccount(ctx context.Context, token string) (Account, error) {
	if !strings.HasPrefix(token, "ms_") {
		return Account{}, fmt.Errorf("api token: %w", ErrNotFound)
	}
	var id, used int64
	var a Account
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT t.id, t.last_used, a.id, a.domain_id, a.address, a.is_admin, a.quota, a.created
		FROM api_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.hash = ?`, secretHash(token)).
		Scan(&id, &used, &a.ID, &a.DomainID, &a.Address, &a.IsAdmin, &a.Quota, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("api token: %w", ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("api token: %w", err)
	}
	a.Created = time.Unix(created, 0)
	if time.Since(time.Unix(used, 0)) > time.Hour {
		_ = s.updateOnce(ctx, func(t *writeTx) error {
			_, err := t.Exec("UPDATE api_tokens SET last_used = ? WHERE id = ?", time.Now().Unix(), id)
			return err
		})
	}
	return a, nil
}
