package store

import (
	"context"
	"testing"

	"mailstead/scram"
)

// TestSCRAMCredentialsDerivedAndGained: a new account has SCRAM keys of its password at once;
// an account from before schema 9 has none until its next successful password login, and its
// app passwords gain theirs the same way; a password change replaces the keys but keeps the salt.
func TestSCRAMCredentialsDerivedAndGained(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := Open(dir, Options{MaxSchema: scramSchema - 1})
	if err != nil {
		t.Fatal(err)
	}
	legacy := testAccount(t, old, "old@example.test")
	appPW, _, err := old.AddAppPassword(ctx, legacy.ID, "phone")
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	st := openTestStore(t, dir)

	keys := func(addr string) int {
		t.Helper()
		_, c, err := st.SCRAMCredentials(ctx, addr)
		if err != nil || len(c.Salt) != 16 || c.Iterations < 4096 {
			t.Fatalf("credentials of %s: %+v %v", addr, c, err)
		}
		return len(c.Keys)
	}
	if n := keys("old@example.test"); n != 0 {
		t.Fatalf("legacy account has %d key sets before any login", n)
	}
	if n := keys("nobody@example.test"); n != 0 {
		t.Fatalf("unknown user has %d key sets", n)
	}
	if _, err := st.Authenticate(ctx, "old@example.test", "pw-old@example.test"); err != nil {
		t.Fatal(err)
	}
	if n := keys("old@example.test"); n != 1 {
		t.Fatalf("after a password login: %d key sets, want 1", n)
	}
	if _, err := st.Authenticate(ctx, "old@example.test", appPW); err != nil {
		t.Fatal(err)
	}
	if n := keys("old@example.test"); n != 3 { // own + app password as shown and as typed
		t.Fatalf("after an app password login: %d key sets, want 3", n)
	}

	fresh := testAccount(t, st, "new@example.test")
	_, c1, _ := st.SCRAMCredentials(ctx, "new@example.test")
	if len(c1.Keys) != 1 {
		t.Fatalf("new account: %d key sets", len(c1.Keys))
	}
	want, _ := scram.Derive("pw-new@example.test", c1.Salt, c1.Iterations)
	if string(want.StoredKey) != string(c1.Keys[0].StoredKey) {
		t.Fatal("stored key is not the password's")
	}
	if err := st.SetPassword(ctx, fresh.Address, "changed"); err != nil {
		t.Fatal(err)
	}
	_, c2, _ := st.SCRAMCredentials(ctx, "new@example.test")
	if len(c2.Keys) != 1 || string(c2.Salt) != string(c1.Salt) || string(c2.Keys[0].StoredKey) == string(c1.Keys[0].StoredKey) {
		t.Fatalf("after a password change: %+v", c2)
	}
	_, ap, err := st.AddAppPassword(ctx, fresh.ID, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if n := keys("new@example.test"); n != 3 {
		t.Fatalf("after a new app password: %d key sets, want 3", n)
	}
	// A revoked app password must not log in over SCRAM either.
	if err := st.RemoveAppPassword(ctx, fresh.ID, ap.ID); err != nil {
		t.Fatal(err)
	}
	if n := keys("new@example.test"); n != 1 {
		t.Fatalf("after revoking the app password: %d key sets, want 1", n)
	}
}
