package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestQueueLifecycle(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	// One message: a local copy for alice and two remote recipients, committed together.
	_, err := s.Deliver(ctx, &Delivery{
		MailFrom: "alice@example.test",
		Data:     []byte("Subject: hi\r\n\r\nbody\r\n"),
		Local:    []LocalRecipient{{AccountID: alice.ID}},
		Remote:   []RemoteRecipient{{Address: "x@far.test"}, {Address: "y@Far.test", RequireTLS: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	due, err := s.QueueDue(ctx, time.Now(), 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("due = %v, %v; want 2 entries", due, err)
	}
	if due[1].Domain != "far.test" || !due[1].RequireTLS || due[0].Size != int64(len("Subject: hi\r\n\r\nbody\r\n")) {
		t.Fatalf("entry = %+v", due[1])
	}
	// A deferred entry is not due until its next attempt.
	next := time.Now().Add(time.Hour)
	if err := s.QueueDefer(ctx, []int64{due[0].ID}, "451 try later", "mx.far.test", next); err != nil {
		t.Fatal(err)
	}
	e, err := s.QueueEntryByID(ctx, due[0].ID)
	if err != nil || e.Attempts != 1 || e.LastError != "451 try later" || e.LastHost != "mx.far.test" || e.LastAttempt.IsZero() {
		t.Fatalf("deferred entry = %+v, %v", e, err)
	}
	if due, _ := s.QueueDue(ctx, time.Now(), 10); len(due) != 1 {
		t.Fatalf("due after defer = %d entries, want 1", len(due))
	}
	if n, err := s.QueueRetry(ctx, due[0].ID); err != nil || n != 1 {
		t.Fatalf("retry = %d, %v", n, err)
	}
	if _, err := s.QueueRetry(ctx, 9999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry of a missing entry: %v", err)
	}
	// Delivered entries go; the body stays while alice's copy uses it.
	if err := s.QueueDone(ctx, due[0].ID, due[1].ID); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.QueueList(ctx); len(all) != 0 {
		t.Fatalf("queue after done: %v", all)
	}
	if _, err := s.QueueBody(ctx, due[0].BlobID); err != nil {
		t.Fatalf("body freed while a mailbox copy uses it: %v", err)
	}
	if _, ok, _ := s.QueueNextAttempt(ctx); ok {
		t.Fatal("empty queue has a next attempt")
	}
}

func TestQueueRemoveFreesBody(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Deliver(ctx, &Delivery{MailFrom: "a@b.test", Data: []byte("x\r\n"),
		Remote: []RemoteRecipient{{Address: "x@far.test"}}}); err != nil {
		t.Fatal(err)
	}
	all, _ := s.QueueList(ctx)
	if n, err := s.QueueRemove(ctx, 0); err != nil || n != 1 {
		t.Fatalf("remove all = %d, %v", n, err)
	}
	if _, err := s.QueueBody(ctx, all[0].BlobID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("body of a removed entry still there: %v", err)
	}
}

func TestIsLocalAddress(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	for _, c := range []struct {
		addr string
		want bool
	}{{"alice@example.test", true}, {"nobody@example.test", false}, {"x@far.test", false}, {"bad", false}} {
		ids, ok, err := s.IsLocalAddress(ctx, c.addr)
		if err != nil || ok != c.want || (ok && ids[0] != alice.ID) {
			t.Errorf("IsLocalAddress(%q) = %v, %v, %v", c.addr, ids, ok, err)
		}
	}
}

// A claimed row is not due to anyone else until it is deferred; a lease left by a dead process is
// released at start; a row completed while another claim waits is never handed out again.
func TestQueueClaimLeases(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Deliver(ctx, &Delivery{MailFrom: "a@b.test", Data: []byte("x\r\n"),
		Remote: []RemoteRecipient{{Address: "x@far.test"}, {Address: "y@far.test"}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claim := func(owner string, pick func([]QueueEntry) []QueueEntry) []QueueEntry {
		t.Helper()
		got, err := s.QueueClaim(ctx, QueueClaim{Owner: owner, Now: now, Until: now.Add(time.Hour), Limit: 10, Pick: pick})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := claim("one", func(due []QueueEntry) []QueueEntry { return due[:1] })
	if len(first) != 1 || first[0].Rcpt != "x@far.test" {
		t.Fatalf("first claim = %+v, want x@far.test only", first)
	}
	if e, _ := s.QueueEntryByID(ctx, first[0].ID); e.LeaseUntil.IsZero() {
		t.Fatalf("claimed entry shows no lease: %+v", e)
	}
	second := claim("two", nil)
	if len(second) != 1 || second[0].Rcpt != "y@far.test" {
		t.Fatalf("second claim = %+v, want y@far.test (x is leased)", second)
	}
	if got := claim("three", nil); len(got) != 0 {
		t.Fatalf("claim while both are leased = %+v", got)
	}
	// y's attempt failed: due again at once (next = now), and its lease is gone.
	if err := s.QueueDefer(ctx, []int64{second[0].ID}, "451 busy", "mx.far.test", now); err != nil {
		t.Fatal(err)
	}
	if got := claim("three", nil); len(got) != 1 || got[0].ID != second[0].ID {
		t.Fatalf("claim after defer = %+v, want y", got)
	}
	// x was delivered: gone, never claimable again.
	if err := s.QueueDone(ctx, first[0].ID); err != nil {
		t.Fatal(err)
	}
	// A restart as "four": y's lease (held by "three") is released, and nothing else remains.
	if n, err := s.QueueReleaseLeases(ctx, "four"); err != nil || n != 1 {
		t.Fatalf("release = %d, %v; want 1", n, err)
	}
	got := claim("four", nil)
	if len(got) != 1 || got[0].Rcpt != "y@far.test" {
		t.Fatalf("claim after restart = %+v, want y only", got)
	}
	if _, err := s.QueueClaim(ctx, QueueClaim{Now: now, Limit: 1}); err == nil {
		t.Fatal("claim without an owner succeeded")
	}
}
