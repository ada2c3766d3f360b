package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The junk filter's model (package junk declares the interface these methods satisfy). Counts
// are per account; training is idempotent per content key; the size is bounded by JunkPrune.

// JunkSettings is an account's filter configuration and what it has learned.
type JunkSettings struct {
	Enabled      bool
	Threshold    float64 // 0 means the filter's default
	Ham, Spam    int64   // messages trained
	Bootstrapped bool    // existing mail was used as training
}

// JunkSettingsOf returns the account's filter settings; an account without a row has the
// defaults (on, default threshold, nothing learned).
func (s *Store) JunkSettingsOf(ctx context.Context, accountID int64) (JunkSettings, error) {
	js := JunkSettings{Enabled: true}
	err := s.db.QueryRowContext(ctx, `SELECT enabled, threshold, ham, spam, bootstrapped FROM junk_accounts
		WHERE account_id = ?`, accountID).Scan(&js.Enabled, &js.Threshold, &js.Ham, &js.Spam, &js.Bootstrapped)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return js, fmt.Errorf("junk settings of account %d: %w", accountID, err)
	}
	return js, nil
}

// JunkAccount is JunkSettingsOf reduced to what classification needs.
func (s *Store) JunkAccount(ctx context.Context, accountID int64) (bool, float64, error) {
	js, err := s.JunkSettingsOf(ctx, accountID)
	return js.Enabled, js.Threshold, err
}

// SetJunkSettings switches the filter on or off for the account and sets its threshold; switching
// it on again marks the account for training from its existing mail.
func (s *Store) SetJunkSettings(ctx context.Context, accountID int64, enabled bool, threshold float64) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		// Switched on again: what the user filed while it was off is the new initial training.
		_, err := t.Exec(`INSERT INTO junk_accounts (account_id, enabled, threshold) VALUES (?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET enabled = excluded.enabled, threshold = excluded.threshold,
			bootstrapped = CASE WHEN enabled = 0 AND excluded.enabled = 1 THEN 0 ELSE bootstrapped END`,
			accountID, enabled, threshold)
		return err
	})
}

// SetJunkBootstrapped records whether existing mail has been used as training. Clearing it (when
// the filter is switched off) makes the next switch-on train on the mail there is then.
func (s *Store) SetJunkBootstrapped(ctx context.Context, accountID int64, done bool) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		_, err := t.Exec(`INSERT INTO junk_accounts (account_id, bootstrapped) VALUES (?, ?)
			ON CONFLICT (account_id) DO UPDATE SET bootstrapped = excluded.bootstrapped`, accountID, done)
		return err
	})
}

// JunkModel loads the account's whole model: trained totals and every token's [ham, spam]
// counts. The filter keeps it in memory, because looking up a message's several hundred tokens
// costs more in SQL than the 1 ms a classification may take.
func (s *Store) JunkModel(ctx context.Context, accountID int64) (ham, spam int64, tokens map[string][2]int64, err error) {
	js, err := s.JunkSettingsOf(ctx, accountID)
	if err != nil {
		return 0, 0, nil, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT token, ham, spam FROM junk_tokens WHERE account_id = ?", accountID)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("junk model of account %d: %w", accountID, err)
	}
	defer rows.Close()
	tokens = map[string][2]int64{}
	for rows.Next() {
		var tok string
		var c [2]int64
		if err := rows.Scan(&tok, &c[0], &c[1]); err != nil {
			return 0, 0, nil, err
		}
		tokens[tok] = c
	}
	if err := rows.Err(); err != nil {
		return 0, 0, nil, fmt.Errorf("junk model of account %d: %w", accountID, err)
	}
	return js.Ham, js.Spam, tokens, nil
}

// JunkTrain counts tokens once for the message with content key: as spam or ham, moving the counts
// if the key was trained as the other class before. It reports whether anything changed, and
// whether counts moved from the other class (switched).
func (s *Store) JunkTrain(ctx context.Context, accountID int64, key string, spam bool, tokens []string) (changed, switched bool, err error) {
	err = s.updateOnce(ctx, func(t *writeTx) error {
		changed, switched = false, false
		var was bool
		err := t.QueryRow("SELECT spam FROM junk_trained WHERE account_id = ? AND key = ?", accountID, key).Scan(&was)
		known := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if known && was == spam {
			return nil
		}
		changed, switched = true, known
		now := time.Now()
		if _, err := t.Exec(`INSERT INTO junk_trained (account_id, key, spam, trained) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id, key) DO UPDATE SET spam = excluded.spam, trained = excluded.trained`,
			accountID, key, spam, now.Unix()); err != nil {
			return err
		}
		// The delta to the class counts: +1 to the new class, and -1 to the old one if known.
		dHam, dSpam := int64(1), int64(0)
		if spam {
			dHam, dSpam = 0, 1
		}
		if known {
			dHam, dSpam = dHam-dSpam, dSpam-dHam
		}
		if _, err := t.Exec(`INSERT INTO junk_accounts (account_id, ham, spam) VALUES (?, max(0, ?), max(0, ?))
			ON CONFLICT (account_id) DO UPDATE SET ham = max(0, ham + ?), spam = max(0, spam + ?)`,
			accountID, dHam, dSpam, dHam, dSpam); err != nil {
			return err
		}
		return t.junkTokenDeltas(accountID, tokens, dHam, dSpam, now)
	})
	if err != nil {
		return false, false, fmt.Errorf("junk train account %d: %w", accountID, err)
	}
	return changed, switched, nil
}

// junkTokenDeltas adds the deltas to every token, dropping tokens whose counts reach zero.
func (t *writeTx) junkTokenDeltas(accountID int64, tokens []string, dHam, dSpam int64, now time.Time) error {
	up, err := t.tx.PrepareContext(t.ctx, `INSERT INTO junk_tokens (account_id, token, ham, spam, last_used)
		VALUES (?1, ?2, max(0, ?3), max(0, ?4), ?5)
		ON CONFLICT (account_id, token) DO UPDATE SET ham = max(0, ham + ?3), spam = max(0, spam + ?4), last_used = ?5
		RETURNING ham + spam`)
	if err != nil {
		return err
	}
	defer up.Close()
	day := now.Unix() / 86400
	var empty []string
	for _, tok := range tokens {
		var n int64
		if err := up.QueryRowContext(t.ctx, accountID, tok, dHam, dSpam, day).Scan(&n); err != nil {
			return fmt.Errorf("token %q: %w", tok, err)
		}
		if n == 0 {
			empty = append(empty, tok)
		}
	}
	for _, tok := range empty {
		if _, err := t.Exec("DELETE FROM junk_tokens WHERE account_id = ? AND token = ?", accountID, tok); err != nil {
			return err
		}
	}
	return nil
}

// JunkPrune bounds the account's model: above maxTokens token rows it drops the oldest of the
// rare ones (seen at most twice) down to 90% of the bound, then the oldest of any; above
// maxTrained training records it forgets the oldest (a message that old moving again is counted
// again, which is harmless). It returns how many token rows went.
func (s *Store) JunkPrune(ctx context.Context, accountID int64, maxTokens, maxTrained int) (int64, error) {
	var removed int64
	err := s.updateOnce(ctx, func(t *writeTx) error {
		removed = 0
		var n int
		if err := t.QueryRow("SELECT count(*) FROM junk_tokens WHERE account_id = ?", accountID).Scan(&n); err != nil {
			return err
		}
		if n > maxTokens {
			res, err := t.Exec(`DELETE FROM junk_tokens WHERE account_id = ?1 AND token IN (
				SELECT token FROM junk_tokens WHERE account_id = ?1 ORDER BY (ham + spam > 2), last_used, ham + spam LIMIT ?2)`,
				accountID, n-maxTokens*9/10)
			if err != nil {
				return fmt.Errorf("prune tokens: %w", err)
			}
			removed, _ = res.RowsAffected()
		}
		if err := t.QueryRow("SELECT count(*) FROM junk_trained WHERE account_id = ?", accountID).Scan(&n); err != nil {
			return err
		}
		if _, err := t.Exec("DELETE FROM junk_filed WHERE account_id = ? AND day < ?", accountID, time.Now().Unix()/86400-400); err != nil {
			return err
		}
		if n > maxTrained {
			if _, err := t.Exec(`DELETE FROM junk_trained WHERE account_id = ?1 AND key IN (
				SELECT key FROM junk_trained WHERE account_id = ?1 ORDER BY trained LIMIT ?2)`, accountID, n-maxTrained); err != nil {
				return fmt.Errorf("prune training records: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("junk prune account %d: %w", accountID, err)
	}
	return removed, nil
}

// JunkMarks returns every reputation mark the account has, by key.
func (s *Store) JunkMarks(ctx context.Context, accountID int64) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT key, marks FROM junk_marks WHERE account_id = ?", accountID)
	if err != nil {
		return nil, fmt.Errorf("junk marks of account %d: %w", accountID, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var m int
		if err := rows.Scan(&k, &m); err != nil {
			return nil, err
		}
		out[k] = m
	}
	return out, rows.Err()
}

// JunkMark sets the bits of mark on each key.
func (s *Store) JunkMark(ctx context.Context, accountID int64, keys []string, mark int) error {
	now := time.Now().Unix()
	return s.updateOnce(ctx, func(t *writeTx) error {
		for _, k := range keys {
			if _, err := t.Exec(`INSERT INTO junk_marks (account_id, key, marks, updated) VALUES (?1, ?2, ?3, ?4)
				ON CONFLICT (account_id, key) DO UPDATE SET marks = marks | ?3, updated = ?4`, accountID, k, mark, now); err != nil {
				return fmt.Errorf("junk mark account %d: %w", accountID, err)
			}
		}
		return nil
	})
}

// JunkDay is one day of the filter's filing counter.
type JunkDay struct {
	Day         time.Time // UTC midnight
	Inbox, Junk int64
}

// AddJunkFiled adds deliveries to the account's counter for a day (unix day number). The
// learner counts in memory and adds them every few seconds, so the counter costs the delivery
// path nothing.
func (s *Store) AddJunkFiled(ctx context.Context, accountID, day, inbox, junk int64) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		_, err := t.Exec(`INSERT INTO junk_filed (account_id, day, inbox, junk) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (account_id, day) DO UPDATE SET inbox = inbox + ?3, junk = junk + ?4`, accountID, day, inbox, junk)
		if err != nil {
			return fmt.Errorf("junk counter of account %d: %w", accountID, err)
		}
		return nil
	})
}

// JunkFiled returns the account's filing counter for the last days, newest first.
func (s *Store) JunkFiled(ctx context.Context, accountID int64, days int) ([]JunkDay, error) {
	since := time.Now().Unix()/86400 - int64(days) + 1
	rows, err := s.db.QueryContext(ctx, `SELECT day, inbox, junk FROM junk_filed WHERE account_id = ? AND day >= ?
		ORDER BY day DESC`, accountID, since)
	if err != nil {
		return nil, fmt.Errorf("junk counter of account %d: %w", accountID, err)
	}
	defer rows.Close()
	var out []JunkDay
	for rows.Next() {
		var d JunkDay
		var day int64
		if err := rows.Scan(&day, &d.Inbox, &d.Junk); err != nil {
			return nil, err
		}
		d.Day = time.Unix(day*86400, 0).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// MessageByUID returns the full stored bytes of one message, or ErrNotFound once it is gone.
func (s *Store) MessageByUID(ctx context.Context, mailboxID int64, uid uint32) ([]byte, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT id FROM messages WHERE mailbox_id = ? AND uid = ?`, mailboxID, uid).Scan(&id)
	if err != nil {
		return nil, fmt.Errorf("message %d/%d: %w", mailboxID, uid, notFound(err))
	}
	return s.MessageData(ctx, id)
}

// JunkUnbootstrapped lists the accounts with the filter on whose existing mail has not been used
// as training yet.
func (s *Store) JunkUnbootstrapped(ctx context.Context) ([]int64, error) {
	return column[int64](s.db.QueryContext(ctx, `SELECT a.id FROM accounts a LEFT JOIN junk_accounts j ON j.account_id = a.id
		WHERE coalesce(j.enabled, 1) = 1 AND coalesce(j.bootstrapped, 0) = 0 ORDER BY a.id`))
}
