package delivery

import (
	"context"
	"errors"
	"testing"

	"mailstead/store"
)

// Import files the bytes as they are into the named mailboxes of the account, adds nothing twice
// on a second run, and refuses an address that is not an account's own: an alias, even of one
// account, or an unknown user.
func TestImport(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	msg := []byte("From: x@old.test\r\nSubject: archived\r\n\r\nhello\r\n")
	msgs := []store.ImportMessage{{Mailboxes: []string{"Old/2020", "INBOX"}, Data: msg, Flags: []string{`\Seen`}}}
	for _, tc := range []struct {
		name    string
		address string
		want    store.ImportResult
		err     error
	}{
		{name: "first run", address: "alice@example.test", want: store.ImportResult{Added: 2, Created: 2}},
		{name: "again: deduplicated", address: "alice@example.test", want: store.ImportResult{Skipped: 2}},
		{name: "alias", address: "team@example.test", err: store.ErrNotFound},
		{name: "unknown user", address: "nobody@example.test", err: store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Import(ctx, st, tc.address, msgs)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Import(%s) = %+v, %v; want %v", tc.address, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Import(%s) = %+v, %v; want %+v", tc.address, got, err, tc.want)
			}
		})
	}
	if got := inbox(t, st, "alice@example.test"); len(got) != 1 || got[0] != string(msg) {
		t.Fatalf("alice's INBOX after import: %q", got)
	}
}
