package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// TestBusyIsASentinel: SQLite's busy result, wrapped however deep, comes out of the retry loop as
// ErrBusy once the retries end (here at once: the context is done); other errors pass through
// unchanged, and a message that merely says "locked" is not taken for it.
func TestBusyIsASentinel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, code := range []sqlite3.ErrNo{sqlite3.ErrBusy, sqlite3.ErrLocked} {
		err := retryBusy(ctx, func() error { return fmt.Errorf("insert: %w", sqlite3.Error{Code: code}) })
		if !errors.Is(err, ErrBusy) {
			t.Errorf("code %v: %v, want ErrBusy", code, err)
		}
	}
	if err := retryBusy(ctx, func() error { return ErrNotFound }); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrBusy) {
		t.Errorf("not found became %v", err)
	}
	if isBusy(errors.New("database is locked")) {
		t.Error("a message text was taken for SQLite's busy code")
	}
}
