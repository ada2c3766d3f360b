package manage

import (
	"context"
	"errors"
	"mailstead/mailtest/storetest"
	"testing"

	"mailstead/settings"
	"mailstead/store"
)

type fakeDKIM struct{}

func (fakeDKIM) NewKeys(d string) (map[string][]byte, error) {
	return map[string][]byte{"dkim/" + d + "/a": []byte("k1"), "dkim/" + d + "/b": []byte("k2")}, nil
}
func (fakeDKIM) KeyPrefix(d string) string { return "dkim/" + d + "/" }

type countCerts struct{ n int }

func (c *countCerts) Refresh() { c.n++ }

func newOps(t *testing.T) (*Ops, *countCerts) {
	t.Helper()
	st := storetest.Open(t)
	reg, err := settings.NewRegistry(Settings())
	if err != nil {
		t.Fatal(err)
	}
	certs := &countCerts{}
	return New(Config{Store: st, DKIM: fakeDKIM{}, Certs: certs, Settings: reg}), certs
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"abc", false}, {"short", false}, {"          ", false}, {"  nine ch  ", false},
		{"ten chars!", true}, {"zehn Zeichen", true}, {"ünïcödé✓✓✓", true},
	} {
		err := CheckPassword(tc.pw)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%q) = %v", tc.pw, err)
		}
		if err != nil && (!IsInvalid(err) || err.Error() != "password: "+PasswordRule) {
			t.Errorf("CheckPassword(%q): %v is not the one rule's message", tc.pw, err)
		}
	}
}

func TestCheckHostname(t *testing.T) {
	for _, tc := range []struct {
		h, want string
	}{
		{"mail.example.com", "mail.example.com"}, {"Mail.Example.COM", "mail.example.com"}, {"mail.bücher.de", "mail.xn--bcher-kva.de"},
		{"", ""}, {"x", ""}, {"localhost", ""}, {"not a hostname!!", ""}, {"mail.example.com.", ""}, {"-a.example.com", ""},
		{"a_b.example.com", ""},
	} {
		got, err := CheckHostname(tc.h)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("CheckHostname(%q) = %q, %v; want %q", tc.h, got, err, tc.want)
		}
	}
}

// Whatever AddDomain makes, RemoveDomain takes away, and both refresh certificates.
func TestDomainAddRemove(t *testing.T) {
	o, certs := newOps(t)
	ctx := context.Background()
	if _, err := o.Setup(ctx, SetupParams{Hostname: "mail.a.test", Domain: "a.test", Admin: "me@a.test", Password: "a good password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.AddDomain(ctx, "B.test", ""); err != nil {
		t.Fatal(err)
	}
	keys, _ := o.st.KVKeys(ctx, "dkim/b.test/")
	ids, ok, _ := o.st.(*store.Store).IsLocalAddress(ctx, "postmaster@b.test")
	me, _ := o.st.AccountByAddress(ctx, "me@a.test")
	if len(keys) != 2 || !ok || ids[0] != me.ID {
		t.Fatalf("after add: keys %v, postmaster %v", keys, ids)
	}
	if err := o.RemoveDomain(ctx, "b.test"); err != nil {
		t.Fatal(err)
	}
	keys, _ = o.st.KVKeys(ctx, "dkim/b.test/")
	if ok, _ := o.st.IsLocalDomain(ctx, "b.test"); ok || len(keys) != 0 {
		t.Fatalf("after remove: domain %v, keys %v", ok, keys)
	}
	if certs.n != 3 { // setup, add, remove
		t.Errorf("%d certificate refreshes, want 3", certs.n)
	}
	if _, err := o.Setup(ctx, SetupParams{Hostname: "mail.c.test", Domain: "c.test", Admin: "me@c.test", Password: "a good password"}); !errors.Is(err, store.ErrAlreadySetUp) {
		t.Errorf("second setup: %v", err)
	}
}

func TestSetSettingRefusesAndStoresNothing(t *testing.T) {
	o, _ := newOps(t)
	ctx := context.Background()
	for _, tc := range []struct{ key, value string }{
		{"hostname", ""}, {"hostname", "x"}, {"setup.token", "tok"}, {"no.such", "1"},
	} {
		if _, err := o.SetSetting(ctx, tc.key, tc.value); !IsInvalid(err) {
			t.Errorf("SetSetting(%s, %q) = %v, want invalid", tc.key, tc.value, err)
		}
		if v, set, _ := o.st.SettingValue(ctx, tc.key); set {
			t.Errorf("%s stored %q", tc.key, v)
		}
	}
	if _, err := o.SetSetting(ctx, "hostname", "mx.example.test"); err != nil {
		t.Fatal(err)
	}
	if s, _ := o.GetSetting(ctx, "hostname"); s.Value != "mx.example.test" || !s.IsSet {
		t.Errorf("hostname %+v", s)
	}
}
