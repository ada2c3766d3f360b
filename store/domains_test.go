package store

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// An address is an account or an alias, never both: adding either where the other exists is
// refused with a message naming the other, and nothing changes.
func TestAccountOrAliasNeverBoth(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	_, err := s.AddAccount(ctx, "team@example.test", "team-password", false)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "is an alias (to alice@example.test, bob@example.test)") {
		t.Errorf("account over an alias: %v", err)
	}
	if _, err := s.AccountByAddress(ctx, "team@example.test"); err == nil {
		t.Error("account made over an alias")
	}
	err = s.AddAlias(ctx, "bob@example.test", []string{"alice@example.test"})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "bob@example.test is an account") {
		t.Errorf("alias over an account: %v", err)
	}
	if ids, _ := s.accountsFor(ctx, "bob@example.test"); len(ids) != 1 {
		t.Errorf("bob@ delivers to %v", ids)
	}
}

// A domain is created with its key material and postmaster alias in one transaction, and
// removed with them; a second setup is refused and changes nothing.
func TestDomainCreatedAndRemovedWhole(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a, err := s.RunSetup(ctx, Setup{Domain: NewDomain{Name: "a.test", KV: map[string][]byte{"dkim/a.test/k": []byte("key")}},
		Admin: "me@a.test", Password: "a good password", Postmaster: true, Settings: map[string]string{"hostname": "mail.a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDomain(ctx, NewDomain{Name: "b.test", Postmaster: a.Address, KV: map[string][]byte{"dkim/b.test/k": []byte("key")}}); err != nil {
		t.Fatal(err)
	}
	if ids, ok, _ := s.IsLocalAddress(ctx, "postmaster@b.test"); !ok || ids[0] != a.ID {
		t.Errorf("postmaster@b.test: %v", ids)
	}
	// An alias target that is not an account undoes the whole domain.
	if _, err := s.CreateDomain(ctx, NewDomain{Name: "c.test", Postmaster: "nobody@a.test", KV: map[string][]byte{"dkim/c.test/k": []byte("key")}}); err == nil {
		t.Error("domain made with a postmaster alias to no account")
	}
	if ok, _ := s.IsLocalDomain(ctx, "c.test"); ok {
		t.Error("c.test exists after its creation failed")
	}
	if keys, _ := s.KVKeys(ctx, "dkim/c.test/"); len(keys) != 0 {
		t.Errorf("keys of the failed domain kept: %v", keys)
	}
	if err := s.DeleteDomain(ctx, DomainRemoval{Name: "b.test", KVPrefixes: []string{"dkim/b.test/"}}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.KVKeys(ctx, "dkim/b.test/"); len(keys) != 0 {
		t.Errorf("keys of the removed domain kept: %v", keys)
	}
	if _, ok, _ := s.IsLocalAddress(ctx, "postmaster@b.test"); ok {
		t.Error("postmaster alias of the removed domain kept")
	}
	if err := s.DeleteDomain(ctx, DomainRemoval{Name: "a.test"}); !errors.Is(err, ErrDomainNotEmpty) || !strings.Contains(err.Error(), "me@a.test") {
		t.Errorf("removing a domain with an account: %v", err)
	}
	_, err = s.RunSetup(ctx, Setup{Domain: NewDomain{Name: "d.test"}, Admin: "x@d.test", Password: "another password",
		Settings: map[string]string{"hostname": "mail.d.test"}})
	if !errors.Is(err, ErrAlreadySetUp) {
		t.Errorf("second setup: %v", err)
	}
	if v, _, _ := s.SettingValue(ctx, "hostname"); v != "mail.a.test" {
		t.Errorf("hostname after the refused setup: %q", v)
	}
}
