package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// GetKV returns the value stored under key, or an error matching fs.ErrNotExist.
func (s *Store) GetKV(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, "SELECT value FROM kv WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("kv %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("kv %q: %w", key, err)
	}
	return v, nil
}

// PutKV stores value under key durably.
func (s *Store) PutKV(ctx context.Context, key string, value []byte) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		_, err := t.Exec(`INSERT INTO kv (key, value, updated) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
			key, value, time.Now().Unix())
		return err
	})
}

// DeleteKV removes key; a missing key is not an error.
func (s *Store) DeleteKV(ctx context.Context, key string) error {
	return s.updateOnce(ctx, func(t *writeTx) error {
		_, err := t.Exec("DELETE FROM kv WHERE key = ?", key)
		return err
	})
}

// KVKeys lists the keys that start with prefix.
func (s *Store) KVKeys(ctx context.Context, prefix string) ([]string, error) {
	return column[string](s.db.QueryContext(ctx, "SELECT key FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", len(prefix), prefix))
}
