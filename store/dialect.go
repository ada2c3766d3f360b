package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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

// foreignKeysTo lists every (table, column) whose foreign key points at table, read from the
// schema itself (PostgreSQL: information_schema.referential_constraints).
func foreignKeysTo(ctx context.Context, q querier, table string) ([][2]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT m.name, f."from" FROM sqlite_schema m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table' AND f."table" = ? ORDER BY m.name`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var r [2]string
		if err := rows.Scan(&r[0], &r[1]); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// copyPages copies every page of src's main database into dst (a new, empty database) in one
// step, inside one read transaction of src: a consistent snapshot while src keeps committing.
// This is SQLite's online backup API; PostgreSQL would take pg_dump or a base backup instead.
func copyPages(dst, src *sql.Conn) error {
	return dst.Raw(func(dc any) error {
		return src.Raw(func(sc any) error {
			d, ok1 := dc.(*sqlite3.SQLiteConn)
			s, ok2 := sc.(*sqlite3.SQLiteConn)
			if !ok1 || !ok2 {
				return errors.New("not a go-sqlite3 connection")
			}
			b, err := d.Backup("main", s, "main")
			if err != nil {
				return fmt.Errorf("start online backup: %w", err)
			}
			// -1: all pages in one step, inside one read transaction of the source.
			if _, err := b.Step(-1); err != nil {
				b.Finish()
				return fmt.Errorf("online backup: %w", err)
			}
			return b.Finish()
		})
	})
}
