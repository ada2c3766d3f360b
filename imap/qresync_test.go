package imap

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"mailstead/store"
)

// TestQResyncLargeMailboxSendsOnlyChanges: a QRESYNC SELECT of a 100,000-message mailbox with
// 10 changes since the client's MODSEQ (7 flag changes, 3 expunges) answers with exactly 7
// FETCH responses and one VANISHED (EARLIER) naming the 3 UIDs, besides the usual SELECT data
// (RFC 7162 §3.2.5.1).
func TestQResyncLargeMailboxSendsOnlyChanges(t *testing.T) {
	const total = 100000
	e := newEnvStore(t, store.Options{}, nil) // no ENVELOPE parsing at import: this test is about counts
	ctx := context.Background()
	importSmall(t, e, total)
	r := loggedInRaw(t, e)
	r.reply("e", "ENABLE QRESYNC")
	_, sel := r.reply("s", "SELECT INBOX")
	validity := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(sel)
	modseq := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(sel)
	if validity == nil || modseq == nil || !strings.Contains(sel, fmt.Sprintf("* %d EXISTS", total)) {
		t.Fatalf("SELECT: %s", sel)
	}
	r.reply("c", "CLOSE")

	inbox := e.mailboxID(t, "INBOX")
	for _, uid := range []uint32{10, 2000, 30000, 45000, 60000, 77777, 99999} {
		if _, _, err := e.st.StoreFlags(ctx, inbox, []uint32{uid}, store.FlagsAdd, []string{`\Flagged`}); err != nil {
			t.Fatal(err)
		}
	}
	gone := []uint32{5, 50000, 100000}
	if _, _, err := e.st.StoreFlags(ctx, inbox, gone, store.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Expunge(ctx, inbox, gone); err != nil {
		t.Fatal(err)
	}

	tagged, all := r.reply("q", fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s))", validity[1], modseq[1]))
	if !strings.HasPrefix(tagged, "q OK") {
		t.Fatalf("QRESYNC SELECT: %s", all)
	}
	var fetches, vanished []string
	for _, l := range strings.Split(all, "\n") {
		switch {
		case strings.Contains(l, " FETCH "):
			fetches = append(fetches, l)
		case strings.HasPrefix(l, "* VANISHED"):
			vanished = append(vanished, l)
		}
	}
	if len(fetches) != 7 {
		t.Errorf("%d FETCH responses, want the 7 changed messages:\n%s", len(fetches), strings.Join(fetches, "\n"))
	}
	for _, f := range fetches {
		if !strings.Contains(f, `\Flagged`) || !strings.Contains(f, "MODSEQ (") {
			t.Errorf("FETCH without the change or its MODSEQ: %s", f)
		}
	}
	if len(vanished) != 1 || vanished[0] != "* VANISHED (EARLIER) 5,50000,100000" {
		t.Errorf("VANISHED responses %q, want one naming 5, 50000 and 100000", vanished)
	}
	if !strings.Contains(all, fmt.Sprintf("* %d EXISTS", total-3)) {
		t.Errorf("EXISTS after 3 expunges missing:\n%s", all)
	}
}

// importSmall puts n small messages into alice's INBOX in a few large imports.
func importSmall(t testing.TB, e *testEnv, n int) {
	t.Helper()
	batch := make([]store.ImportMessage, 0, 20000)
	for i := 0; i < n; i++ {
		batch = append(batch, store.ImportMessage{Mailboxes: []string{"INBOX"},
			Data: []byte(fmt.Sprintf("Subject: m%d\r\nMessage-ID: <%d@example.test>\r\n\r\nbody %d\r\n", i, i, i))})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := e.st.Import(context.Background(), e.aliceID, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkResync100k: a client that last saw a 100,000-message mailbox comes back after 10
// flag changes. "qresync" is SELECT (QRESYNC (uidvalidity modseq)); "full" is what a client
// without it does, SELECT and UID FETCH 1:* (FLAGS). Compare the two ns/op.
//
//	go test ./imap/ -run '^$' -bench Resync100k -benchtime 5x
func BenchmarkResync100k(b *testing.B) {
	e := newEnvStore(b, store.Options{}, nil)
	importSmall(b, e, 100000)
	inbox := e.mailboxID(b, "INBOX")
	r := dialRaw(b, e.plain)
	r.send("s STARTTLS\r\n")
	r.expectPrefix("s OK")
	r.startTLS()
	cmd := func(tag, c string) string {
		r.send(tag + " " + c + "\r\n")
		lines := r.untilTagged(tag)
		if !strings.HasPrefix(lines[len(lines)-1], tag+" OK") {
			b.Fatalf("%s: %s", c, lines[len(lines)-1])
		}
		return strings.Join(lines, "\n")
	}
	cmd("l", "LOGIN alice@example.test alice-secret")
	cmd("e", "ENABLE QRESYNC")
	ctx := context.Background()
	for _, mode := range []string{"qresync", "full"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				sel := cmd("x", "EXAMINE INBOX")
				validity := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(sel)[1]
				modseq := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(sel)[1]
				cmd("u", "UNSELECT")
				for k := 0; k < 10; k++ {
					if _, _, err := e.st.StoreFlags(ctx, inbox, []uint32{uint32(1 + (i*10+k)*997%100000)}, store.FlagsAdd,
						[]string{fmt.Sprintf("$k%d", i)}); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if mode == "qresync" {
					cmd("q", fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s))", validity, modseq))
				} else {
					cmd("q", "SELECT INBOX")
					cmd("f", "UID FETCH 1:* (FLAGS)")
				}
				b.StopTimer()
				cmd("u", "UNSELECT")
			}
		})
	}
}
