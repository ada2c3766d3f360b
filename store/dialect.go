package store

import (
	"errors"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// ErrBusy: the database stayed locked by another process (a backup, the CLI while the server
// is stopped) through every retry. Callers answer it as a temporary condition (IMAP
// [UNAVAILABLE], SMTP 451), never as a server bug.
var ErrBusy = errors.New("database busy")

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY or SQLITE_LOCKED),
// by its result code rather than its message. This file holds what is SQLite's alone, so a
// PostgreSQL store has one place to give its own answer.
func isBusy(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	return false
}

// SQLite's maintenance statements, named so that the store's code says what it does and a
// second database has one place to give its own (PostgreSQL: CHECKPOINT, amcheck).
const (
	// sqlCheckpoint copies the write-ahead log into the database file and empties it.
	sqlCheckpoint = "PRAGMA wal_checkpoint(TRUNCATE)"
	// sqlIntegrityCheck returns "ok", or one line per problem found in the whole file.
	sqlIntegrityCheck = "PRAGMA integrity_check"
	// sqlQuickCheck is sqlIntegrityCheck without the index cross-checks (a fresh backup).
	sqlQuickCheck = "PRAGMA quick_check"
	// sqlForeignKeyCheck returns one row per row whose reference points nowhere.
	sqlForeignKeyCheck = "PRAGMA foreign_key_check"
)
