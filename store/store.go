// Package store owns every durable byte of mailstead: one SQLite database in the data directory
// holding settings, domains, accounts, mailboxes, messages, blobs and the outbound queue.
//
// It is the only package that speaks SQL and it imports nothing of ours. All writes go through a
// single writer goroutine that commits concurrent requests together (group commit) and publishes
// change events after each commit, in commit order. A write that returned nil is durable.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// DBFile is the name of the database inside the data directory.
const DBFile = "mailstead.db"

// Options tune a Store. The zero value is usable.
type Options struct {
	Logger *slog.Logger

	// Describe, if set, parses a message at delivery into its IMAP ENVELOPE and BODYSTRUCTURE,
	// stored with each message so that fetching them never reparses the body.
	Describe func(msg io.ReaderAt, size int64) (envelope, structure []byte)

	// MaxSchema stops migrations after this version (tests of upgrades). Zero applies all.
	MaxSchema int

	// PasswordChecks bounds how many argon2id password checks run at once, server-wide. Zero
	// means one per core (GOMAXPROCS).
	PasswordChecks int
}

// Store is an open data directory.
type Store struct {
	dir    string
	log    *slog.Logger
	opts   Options
	db     *sql.DB // readers
	wdb    *sql.DB // the single writer connection
	jobs   chan *job
	hub    hub
	auth   authCache
	hashes *hashBudget
	scram  scramSecret // salts made up for unknown users (scram.go)
	closed chan struct{}
	done   chan struct{}
	once   sync.Once

	closing  sync.RWMutex // held for reading while a write is queued
	isClosed bool

	commits counter // number of write transactions committed, for the group-commit benchmark
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store closed")

// Open opens (creating if needed) the data directory dir and brings its schema up to date.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	// synchronous=FULL: a commit returns only after the WAL is fsynced (the 250 contract).
	// _stmt_cache_size: each connection keeps its most used prepared statements, so the queries
	// of every message (recipient, domain, mailbox, insert) are not compiled again each time.
	dsn := "file:" + path + "?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=on&_busy_timeout=15000&_txlock=immediate&cache=private&_stmt_cache_size=32"
	wdb, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	if err := migrate(context.Background(), wdb, opts.MaxSchema); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	// After the migration the -wal and -shm files exist too: the whole directory is checked now.
	fix, err := tightenPermissions(dir)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if fix.dirWas != 0 || fix.files > 0 {
		opts.Logger.Warn("data directory permissions were wider than 0700 (files 0600): tightened",
			"dir", dir, "dir_mode_was", fmt.Sprintf("%04o", fix.dirWas), "entries_fixed", fix.files)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_foreign_keys=on&_busy_timeout=15000&_query_only=1&cache=private&_stmt_cache_size=32")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	s := &Store{
		dir:    dir,
		log:    opts.Logger,
		opts:   opts,
		db:     db,
		wdb:    wdb,
		jobs:   make(chan *job, 1024),
		hashes: newHashBudget(opts.PasswordChecks),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	go s.writeLoop()
	return s, nil
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// Path is the database file.
func (s *Store) Path() string { return filepath.Join(s.dir, DBFile) }

// Close waits for queued writes to finish and closes the database cleanly.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closing.Lock()
		s.isClosed = true
		s.closing.Unlock()
		close(s.closed)
	})
	<-s.done
	err1 := s.db.Close()
	// A clean close checkpoints the WAL into the main file.
	_, _ = s.wdb.Exec(sqlCheckpoint)
	err2 := s.wdb.Close()
	return errors.Join(err1, err2)
}

// Commits reports how many write transactions have been committed since Open.
func (s *Store) Commits() int64 { return s.commits.load() }

// IntegrityCheck runs SQLite's integrity check and returns its findings ("ok" when sound).
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	lines, err := column[string](s.db.QueryContext(ctx, sqlIntegrityCheck))
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return strings.Join(lines, "\n"), nil
}

// CountRows counts the rows of a table (verification and tests).
func (s *Store) CountRows(ctx context.Context, table string) (int, error) {
	switch table {
	case "blobs", "blob_chunks", "messages", "mailboxes", "accounts", "domains", "aliases", "queue":
	default:
		return 0, fmt.Errorf("count rows: unknown table %q", table)
	}
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n)
	return n, err
}

// column reads a one-column query result, closing rows. err is the query's own error, so a call
// reads column[T](db.Query(…)).
func column[T any](rows *sql.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
