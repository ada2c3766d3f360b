package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Settings are persisted here and defined elsewhere: each package owns the typed definitions of
// its settings (mailstead/settings), validates through them and reads through them, so the
// store knows no names, types or defaults.

// SettingValue returns the stored value of key; ok is false when it was never set or was reset
// (the owner's default applies).
func (s *Store) SettingValue(ctx context.Context, key string) (value string, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("setting %s: %w", key, err)
	}
	return value, true, nil
}

// SetSetting stores value for key; an empty value removes it, so the default applies. The
// caller has validated it (the operations layer, through the owner's definition).
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	return s.updateOnce(ctx, func(t *writeTx) error { return t.putSetting(key, value) })
}

// putSetting stores a setting inside a write and announces it after the commit.
func (t *writeTx) putSetting(key, value string) error {
	var err error
	if value == "" {
		_, err = t.Exec("DELETE FROM settings WHERE key = ?", key)
	} else {
		_, err = t.Exec(`INSERT INTO settings (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	}
	if err != nil {
		return fmt.Errorf("setting %s: %w", key, err)
	}
	t.Publish(Event{Kind: SettingChanged, Name: key})
	return nil
}
