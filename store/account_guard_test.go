package store

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestLastAdminIsKept: the only admin can be neither demoted nor removed; once another account
// is admin, both work.
func TestLastAdminIsKept(t *testing.T) {
	s := openTest(t)
	fixture(t, s) // alice is the only admin
	ctx := context.Background()
	if err := s.SetAdmin(ctx, "alice@example.test", false); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("demote the only admin: %v, want ErrLastAdmin", err)
	}
	if err := s.RemoveAccount(ctx, "alice@example.test", -1); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("remove the only admin: %v, want ErrLastAdmin", err)
	}
	if a, err := s.AccountByAddress(ctx, "alice@example.test"); err != nil || !a.IsAdmin {
		t.Fatalf("alice after the refusals: %+v %v", a, err)
	}
	if err := s.SetAdmin(ctx, "bob@example.test", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAdmin(ctx, "alice@example.test", false); err != nil {
		t.Errorf("demote alice with bob admin: %v", err)
	}
	if err := s.RemoveAccount(ctx, "bob@example.test", -1); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("remove bob, now the only admin: %v", err)
	}
}

// TestRemoveAccountHoldingMail: an account holding mail is removed only when the caller agreed
// to at least that many messages; the refusal names the count and the aliases routing to it.
func TestRemoveAccountHoldingMail(t *testing.T) {
	s := openTest(t)
	_, bob := fixture(t, s)
	ctx := context.Background()
	for range 3 {
		if _, err := s.Deliver(ctx, &Delivery{MailFrom: "x@remote.test", Data: []byte("Subject: hi\r\n\r\nhi\r\n"),
			Local: []LocalRecipient{{AccountID: bob.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.Holdings(ctx, "bob@example.test")
	if want := []string{"@other.test", "team@example.test"}; err != nil || h.Messages != 3 || !slices.Equal(h.Aliases, want) {
		t.Fatalf("holdings %+v %v; want 3 messages and aliases %v", h, err, want)
	}
	for _, agreed := range []int64{0, 2} {
		var held *HoldsMailError
		if err := s.RemoveAccount(ctx, "bob@example.test", agreed); !errors.As(err, &held) || held.Messages != 3 || len(held.Aliases) != 2 {
			t.Errorf("remove agreeing to %d messages: %v", agreed, err)
		}
	}
	if _, err := s.AccountByAddress(ctx, "bob@example.test"); err != nil {
		t.Fatal("bob removed after a refusal")
	}
	if err := s.RemoveAccount(ctx, "bob@example.test", 3); err != nil {
		t.Fatalf("remove agreeing to 3: %v", err)
	}
	if _, ok, _ := s.IsLocalAddress(ctx, "anything@other.test"); ok {
		t.Error("the catch-all that routed only to bob still delivers")
	}
}
