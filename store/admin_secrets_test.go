package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAppPasswordsOpenMailButNotTheWebPages(t *testing.T) {
	s := openTest(t)
	alice, bob := fixture(t, s)
	ctx := context.Background()
	pw, ap, err := s.AddAppPassword(ctx, alice.ID, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.ReplaceAll(pw, " ", "")) != appPasswordLen || ap.Name != "phone" {
		t.Fatalf("app password %q %+v", pw, ap)
	}
	for _, form := range []string{pw, strings.ReplaceAll(pw, " ", ""), strings.ToUpper(pw[:1]) + pw[1:]} {
		if a, err := s.Authenticate(ctx, "alice@example.test", form); err != nil || a.ID != alice.ID {
			t.Errorf("Authenticate with app password %q: %v %v", form, a, err)
		}
	}
	if _, err := s.Authenticate(ctx, "bob@example.test", pw); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("alice's app password opened bob's account: %v", err)
	}
	if _, err := s.AuthenticatePrimary(ctx, "alice@example.test", pw); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("AuthenticatePrimary took an app password: %v", err)
	}
	if _, err := s.AuthenticatePrimary(ctx, "alice@example.test", "alice-pw"); err != nil {
		t.Errorf("AuthenticatePrimary with the real password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alice@example.test", "alice-pw"); err != nil {
		t.Errorf("Authenticate with the real password: %v", err)
	}
	list, err := s.AppPasswords(ctx, alice.ID)
	if err != nil || len(list) != 1 || list[0].LastUsed.IsZero() {
		t.Fatalf("AppPasswords = %+v, %v (want one, used)", list, err)
	}
	if err := s.RemoveAppPassword(ctx, bob.ID, ap.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob removed alice's app password: %v", err)
	}
	if err := s.RemoveAppPassword(ctx, alice.ID, ap.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice@example.test", pw); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("revoked app password still works: %v", err)
	}
}

func TestWebSessions(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	tok, err := s.CreateWebSession(ctx, alice.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.WebSession(ctx, tok); err != nil || a.ID != alice.ID || !a.IsAdmin {
		t.Fatalf("WebSession = %+v, %v", a, err)
	}
	for _, bad := range []string{"", "x", tok + "x"} {
		if _, err := s.WebSession(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("WebSession(%q) = %v", bad, err)
		}
	}
	old, _ := s.CreateWebSession(ctx, alice.ID, -time.Second)
	if _, err := s.WebSession(ctx, old); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired session accepted: %v", err)
	}
	other, _ := s.CreateWebSession(ctx, alice.ID, time.Hour)
	if err := s.EndWebSessions(ctx, alice.ID, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WebSession(ctx, other); !errors.Is(err, ErrNotFound) {
		t.Errorf("other session survived EndWebSessions: %v", err)
	}
	if _, err := s.WebSession(ctx, tok); err != nil {
		t.Errorf("kept session ended: %v", err)
	}
	s.EndWebSession(ctx, tok)
	if _, err := s.WebSession(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Errorf("logged-out session accepted: %v", err)
	}
}

func TestAPITokens(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	tok, at, err := s.CreateAPIToken(ctx, alice.ID, "script")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.APITokenAccount(ctx, tok); err != nil || a.ID != alice.ID {
		t.Fatalf("APITokenAccount = %+v, %v", a, err)
	}
	if _, err := s.APITokenAccount(ctx, "ms_nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
	if list, _ := s.APITokens(ctx, alice.ID); len(list) != 1 || list[0].Name != "script" {
		t.Errorf("APITokens = %+v", list)
	}
	s.RemoveAPIToken(ctx, alice.ID, at.ID)
	if _, err := s.APITokenAccount(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked token accepted: %v", err)
	}
}

func TestMailEventsAreBounded(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var evs []MailEvent
	for i := 0; i < mailEventsKept+10; i++ {
		evs = append(evs, MailEvent{Kind: MailRejected, Rcpt: "x@example.test", Detail: strings.Repeat("y", 600)})
	}
	if err := s.RecordMailEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	s.RecordMailEvents(ctx, MailEvent{Kind: MailDelivered, Rcpt: "last@example.test"})
	all, err := s.RecentMailEvents(ctx, "", 5000)
	if err != nil || len(all) != mailEventsKept {
		t.Fatalf("kept %d events, %v; want %d", len(all), err, mailEventsKept)
	}
	if all[0].Rcpt != "last@example.test" || len(all[1].Detail) != 500 {
		t.Errorf("newest = %+v, detail length %d", all[0], len(all[1].Detail))
	}
	if d, _ := s.RecentMailEvents(ctx, MailDelivered, 10); len(d) != 1 {
		t.Errorf("delivered events = %d", len(d))
	}
}

func TestSetQuota(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	if err := s.SetQuota(ctx, "bob@example.test", 1<<20); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.AccountByAddress(ctx, "bob@example.test"); a.Quota != 1<<20 {
		t.Errorf("quota = %d", a.Quota)
	}
	if err := s.SetQuota(ctx, "bob@example.test", -1); err == nil {
		t.Error("negative quota accepted")
	}
}

// A data directory from before the admin tables (schema 2) opens, and its accounts get app
// passwords, sessions and API tokens.
func TestMigrationToAdminSchema(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, Options{MaxSchema: 2})
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := fixture(t, s)
	s.Close()
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open schema-2 data dir: %v", err)
	}
	defer s.Close()
	pw, _, err := s.AddAppPassword(ctx, alice.ID, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice@example.test", pw); err != nil {
		t.Errorf("app password after upgrade: %v", err)
	}
	if _, err := s.CreateWebSession(ctx, alice.ID, time.Hour); err != nil {
		t.Error(err)
	}
	if err := s.RecordMailEvents(ctx, MailEvent{Kind: MailDelivered}); err != nil {
		t.Error(err)
	}
	// Removing an account takes its secrets with it (ON DELETE CASCADE).
	s.CreateAPIToken(ctx, alice.ID, "x")
	if _, err := s.AddAccount(ctx, "keeper@example.test", "keeper-pw-1", true); err != nil { // the only admin is never removed
		t.Fatal(err)
	}
	if err := s.RemoveAccount(ctx, "alice@example.test", -1); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"app_passwords", "web_sessions", "api_tokens"} {
		var n int
		s.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n)
		if n != 0 {
			t.Errorf("%s keeps %d rows of a removed account", table, n)
		}
	}
}
