// Package storetest opens a real store (SQLite file in the test's temp directory) holding the
// domains a test names, for any package's tests. It is for tests only and never used by the
// server; store's own tests cannot use it (it imports store).
package storetest

import (
	"context"
	"testing"

	"mailstead/store"
)

// Open opens a store in a fresh temp directory, closed when the test ends, with the given
// domains added.
func Open(t testing.TB, domains ...string) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, d := range domains {
		if _, err := st.AddDomain(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// Account adds an account (not an admin) and returns it, failing the test on error.
func Account(t testing.TB, st *store.Store, address, password string) store.Account {
	t.Helper()
	acc, err := st.AddAccount(context.Background(), address, password, false)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}
