package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fixture creates example.test with alice, bob, an alias and a catch-all on other.test.
func fixture(t *testing.T, s *Store) (alice, bob Account) {
	t.Helper()
	ctx := context.Background()
	for _, d := range []string{"example.test", "other.test"} {
		if _, err := s.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if alice, err = s.AddAccount(ctx, "Alice@Example.test", "alice-pw", true); err != nil {
		t.Fatal(err)
	}
	if bob, err = s.AddAccount(ctx, "bob@example.test", "bob-pw", false); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAlias(ctx, "team@example.test", []string{"alice@example.test", "bob@example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAlias(ctx, "@other.test", []string{"bob@example.test"}); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func TestNewAccountHasDefaultMailboxes(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	mbs, err := s.Mailboxes(context.Background(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	validity := map[uint32]bool{}
	for _, m := range mbs {
		got[m.Name] = m.SpecialUse
		validity[m.UIDValidity] = true
	}
	want := map[string]string{"INBOX": "", "Sent": `\Sent`, "Drafts": `\Drafts`, "Trash": `\Trash`, "Junk": `\Junk`, "Archive": `\Archive`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("mailboxes = %v, want %v", got, want)
	}
	if len(validity) != len(mbs) {
		t.Fatalf("UIDVALIDITY values repeat across mailboxes: %v", validity)
	}
}

func TestLookupRecipient(t *testing.T) {
	s := openTest(t)
	alice, bob := fixture(t, s)
	ctx := context.Background()
	tests := []struct {
		addr    string
		want    []int64
		wantErr error
	}{
		{"alice@example.test", []int64{alice.ID}, nil},
		{"ALICE@EXAMPLE.TEST", []int64{alice.ID}, nil},
		{"alice+news@example.test", []int64{alice.ID}, nil},
		{"team@example.test", []int64{alice.ID, bob.ID}, nil},
		{"team+x@example.test", []int64{alice.ID, bob.ID}, nil},
		{"anything@other.test", []int64{bob.ID}, nil},
		{"carol@example.test", nil, ErrUnknownUser},
		{"alice%evil.test@example.test", nil, ErrUnknownUser},
		{"alice@evil.test", nil, ErrNotOurDomain},
		{"alice@example.test.", nil, ErrBadAddress},
		{`"alice@evil.test"@example.test`, nil, ErrBadAddress},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			local, domain, err := SplitAddress(tt.addr)
			var ids []int64
			if err == nil {
				ids, err = s.LookupRecipient(ctx, local, domain)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Fatalf("ids = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	ctx := context.Background()
	if _, err := s.Authenticate(ctx, "alice@example.test", "alice-pw"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alice@example.test", "alice-pw"); err != nil {
		t.Fatalf("cached right password: %v", err)
	}
	for _, c := range [][2]string{{"alice@example.test", "wrong"}, {"nobody@example.test", "alice-pw"}, {"bad", "x"}} {
		if _, err := s.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("Authenticate(%q, %q) = %v, want ErrAuthFailed", c[0], c[1], err)
		}
	}
	if err := s.SetPassword(ctx, "alice@example.test", "new-pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice@example.test", "alice-pw"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("old password still accepted after change (cache must miss): %v", err)
	}
}

func TestDeliverStoresBodyOnceAndPublishesInOrder(t *testing.T) {
	s := openTest(t)
	alice, bob := fixture(t, s)
	ctx := context.Background()
	var mu sync.Mutex
	var events []Event
	cancel := s.Subscribe(func(ev Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	defer cancel()
	body := []byte("Subject: hi\r\n\r\nhello\r\n")
	copies, err := s.Deliver(ctx, &Delivery{
		MailFrom: "x@remote.test",
		Data:     body,
		Local: []LocalRecipient{
			{AccountID: alice.ID, Prefix: []byte("Delivered-To: alice@example.test\r\n")},
			{AccountID: bob.ID, Prefix: []byte("Delivered-To: bob@example.test\r\n"), SpecialUse: `\Junk`},
			{AccountID: alice.ID}, // duplicate through an alias: one copy only
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != 2 {
		t.Fatalf("copies = %+v, want 2", copies)
	}
	var blobs int
	s.db.QueryRow("SELECT count(*) FROM blobs").Scan(&blobs)
	if blobs != 1 {
		t.Fatalf("blobs = %d, want the body stored once", blobs)
	}
	junk, _ := s.MailboxByName(ctx, bob.ID, "Junk")
	if copies[1].MailboxID != junk.ID {
		t.Fatalf("bob's copy went to mailbox %d, want Junk %d", copies[1].MailboxID, junk.ID)
	}
	msgs, _ := s.Messages(ctx, copies[0].MailboxID)
	data, err := s.MessageData(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("Delivered-To: alice@example.test\r\n"), body...); !bytes.Equal(data, want) {
		t.Fatalf("data = %q, want %q", data, want)
	}
	mu.Lock()
	defer mu.Unlock()
	var added []Event
	for _, ev := range events {
		if ev.Kind == MessageAdded {
			added = append(added, ev)
		}
	}
	if len(added) != 2 || added[0].AccountID != alice.ID || added[1].AccountID != bob.ID || added[0].UIDs[0] != 1 {
		t.Fatalf("events = %+v", added)
	}
}

// TestGroupCommit checks that concurrent deliveries share commits and all land with distinct UIDs.
func TestGroupCommit(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	before := s.Commits()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Deliver(ctx, &Delivery{Data: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)),
				Local: []LocalRecipient{{AccountID: alice.ID}}})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := s.MailboxByName(ctx, alice.ID, "inbox")
	msgs, _ := s.Messages(ctx, inbox.ID)
	if len(msgs) != n {
		t.Fatalf("stored %d, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if m.UID != uint32(i+1) {
			t.Fatalf("message %d has UID %d", i, m.UID)
		}
	}
	if c := s.Commits() - before; c >= n {
		t.Fatalf("%d commits for %d concurrent deliveries: no grouping", c, n)
	}
}

// TestFailedJobDoesNotSinkBatch: one write failing inside a group commit leaves the others intact.
func TestFailedJobDoesNotSinkBatch(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]error, 50)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = s.updateOnce(ctx, func(tx *writeTx) error {
				if _, err := tx.Exec("INSERT INTO settings (key, value) VALUES (?, 'v')", fmt.Sprint("k", i)); err != nil {
					return err
				}
				if i%2 == 1 {
					return errors.New("fail on purpose")
				}
				return nil
			})
		}(i)
	}
	wg.Wait()
	var n int
	s.db.QueryRow("SELECT count(*) FROM settings").Scan(&n)
	if n != 25 {
		t.Fatalf("%d rows committed, want the 25 successful writes", n)
	}
	for i, err := range results {
		if (err != nil) != (i%2 == 1) {
			t.Fatalf("write %d: err = %v", i, err)
		}
	}
}

func TestMigrationFromSchema1(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, Options{MaxSchema: 1})
	if err != nil {
		t.Fatal(err)
	}
	fixture(t, s)
	s.Close()
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open schema-1 data dir: %v", err)
	}
	defer s.Close()
	if _, err := s.Authenticate(ctx, "alice@example.test", "alice-pw"); err != nil {
		t.Fatalf("account lost in upgrade: %v", err)
	}
	var n int
	s.db.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n)
	ms, _ := migrations()
	if n != len(ms) {
		t.Fatalf("%d migrations recorded, want %d", n, len(ms))
	}
	if res, _ := s.IntegrityCheck(ctx); res != "ok" {
		t.Fatalf("integrity: %s", res)
	}
}

func TestRemoveDomainRefusesWhileInUse(t *testing.T) {
	s := openTest(t)
	fixture(t, s)
	if err := s.RemoveDomain(context.Background(), "example.test"); !errors.Is(err, ErrDomainNotEmpty) {
		t.Fatalf("err = %v, want ErrDomainNotEmpty", err)
	}
}

func TestUIDValidityNeverRepeats(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	seen := map[uint32]bool{}
	for i := 0; i < 3; i++ {
		var mb Mailbox
		err := s.updateOnce(ctx, func(tx *writeTx) error {
			var err error
			mb, err = tx.createMailbox(alice.ID, "Again", "")
			if err != nil {
				return err
			}
			_, err = tx.Exec("DELETE FROM mailboxes WHERE id = ?", mb.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen[mb.UIDValidity] {
			t.Fatalf("UIDVALIDITY %d reused", mb.UIDValidity)
		}
		seen[mb.UIDValidity] = true
	}
}

// TestQueueIDsNeverReused: once the newest queue entry is gone, the next one gets a new ID.
func TestQueueIDsNeverReused(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	enqueue := func() int64 {
		t.Helper()
		if _, err := s.Deliver(ctx, &Delivery{MailFrom: "a@example.test", Data: []byte("Subject: x\r\n\r\nx\r\n"),
			Remote: []RemoteRecipient{{Address: "b@remote.test"}}}); err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := s.db.QueryRow("SELECT max(id) FROM queue").Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := enqueue()
	if err := s.updateOnce(ctx, func(tx *writeTx) error {
		_, err := tx.Exec("DELETE FROM queue WHERE id = ?", first)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if second := enqueue(); second == first {
		t.Fatalf("queue ID %d handed out twice", first)
	}
}
