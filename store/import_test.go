package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestImportSkipsWhatIsThere(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t, t.TempDir())
	a := testAccount(t, st, "ivy@example.test")
	var events []Event
	cancel := st.Subscribe(func(ev Event) { events = append(events, ev) })
	defer cancel()

	date := time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)
	batch := []ImportMessage{
		{Mailboxes: []string{"INBOX", "Work/Projects"}, Data: []byte("Subject: a\r\n\r\na\r\n"), Flags: []string{`\seen`}, Date: date},
		{Mailboxes: []string{"Work/Projects"}, Data: []byte("Subject: b\r\n\r\nb\r\n")},
		{Mailboxes: []string{"Work/Projects"}, Data: []byte("Subject: b\r\n\r\nb\r\n")}, // the same bytes twice
	}
	res, err := st.Import(ctx, a.ID, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportResult{Added: 3, Skipped: 1, Created: 2}); res != want {
		t.Fatalf("first import: %+v, want %+v", res, want)
	}
	res, err = st.Import(ctx, a.ID, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportResult{Skipped: 4}); res != want {
		t.Fatalf("second import: %+v, want %+v", res, want)
	}

	work, err := st.MailboxByName(ctx, a.ID, "Work/Projects")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.MailboxByName(ctx, a.ID, "Work"); err != nil {
		t.Fatalf("parent mailbox not created: %v", err)
	}
	msgs, _ := st.Messages(ctx, work.ID)
	if len(msgs) != 2 || !msgs[0].InternalDate.Equal(date) || !slices.Equal(msgs[0].Flags, []string{`\Seen`}) {
		t.Fatalf("Work/Projects: %+v", msgs)
	}
	// The two copies of message a share one body.
	if n, _ := st.CountRows(ctx, "blobs"); n != 2 {
		t.Fatalf("%d bodies, want 2", n)
	}
	added := 0
	for _, ev := range events {
		if ev.Kind == MessageAdded {
			added++
		}
	}
	if added != 3 {
		t.Fatalf("%d MessageAdded events, want 3", added)
	}

	// Deleting the mailbox forgets its fingerprints: an import into it starts afresh.
	if err := st.DeleteMailbox(ctx, a.ID, "Work/Projects"); err != nil {
		t.Fatal(err)
	}
	res, err = st.Import(ctx, a.ID, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 2 || res.Created != 1 {
		t.Fatalf("import after delete: %+v", res)
	}
	if rep, err := st.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", rep.Problems, err)
	}
}

func TestImportRejectsBadMailboxName(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	a := testAccount(t, st, "jay@example.test")
	_, err := st.Import(context.Background(), a.ID, []ImportMessage{{Mailboxes: []string{"a//b"}, Data: []byte("x\r\n")}})
	if err == nil {
		t.Fatal("import into an invalid mailbox name succeeded")
	}
}

func BenchmarkImport(b *testing.B) {
	st, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.AddDomain(ctx, "example.test")
	a, _ := st.AddAccount(ctx, "k@example.test", "pw", false)
	b.ResetTimer()
	for i := 0; i < b.N; i += 200 {
		var batch []ImportMessage
		for j := i; j < i+200 && j < b.N; j++ {
			batch = append(batch, ImportMessage{Mailboxes: []string{"INBOX"}, Data: []byte(fmt.Sprintf("Subject: %d\r\n\r\n%0500d\r\n", j, j))})
		}
		if _, err := st.Import(ctx, a.ID, batch); err != nil {
			b.Fatal(err)
		}
	}
}
