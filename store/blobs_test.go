package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
)

// bigMessage is a message of about n bytes whose every line is distinct, so a misplaced chunk
// shows.
func bigMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@b.test\r\nSubject: big\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %08d of a large body, padded to make it longer than one chunk\r\n", i)
	}
	return b.Bytes()
}

// TestChunkedBody: a body larger than one chunk is stored in chunks and comes back byte for
// byte, whole, by header, and at any offset through OpenMessage; expunging the message removes
// its chunks with it, and Verify finds nothing wrong meanwhile.
func TestChunkedBody(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.AddDomain(ctx, "example.test")
	acct, err := st.AddAccount(ctx, "alice@example.test", "pw", false)
	if err != nil {
		t.Fatal(err)
	}
	msg := bigMessage(3*chunkSize + 1234)
	prefix := []byte("Return-Path: <a@b.test>\r\n")
	if _, err := st.Deliver(ctx, &Delivery{MailFrom: "a@b.test", Body: bytes.NewReader(msg), Size: int64(len(msg)),
		Local: []LocalRecipient{{AccountID: acct.ID, Prefix: prefix}}}); err != nil {
		t.Fatal(err)
	}
	var chunks int
	st.db.QueryRowContext(ctx, "SELECT count(*) FROM blob_chunks").Scan(&chunks)
	if chunks != 4 {
		t.Fatalf("%d chunks stored, want 4", chunks)
	}
	inbox, _ := st.MailboxByName(ctx, acct.ID, "INBOX")
	msgs, _ := st.Messages(ctx, inbox.ID)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	want := append(bytes.Clone(prefix), msg...)
	got, err := st.MessageData(ctx, msgs[0].ID)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MessageData: %d bytes, %v; want %d bytes equal", len(got), err, len(want))
	}
	head, err := st.MessageHeader(ctx, msgs[0].ID)
	if err != nil || string(head) != string(prefix)+"From: a@b.test\r\nSubject: big\r\n\r\n" {
		t.Fatalf("MessageHeader = %q, %v", head, err)
	}
	r, err := st.OpenMessage(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != int64(len(want)) {
		t.Fatalf("Size %d, want %d", r.Size(), len(want))
	}
	for _, off := range []int64{0, 10, chunkSize - 5, chunkSize, 2*chunkSize + 17, int64(len(want)) - 3} {
		p := make([]byte, 100)
		n, err := r.ReadAt(p, off)
		end := min(off+100, int64(len(want)))
		if !bytes.Equal(p[:n], want[off:end]) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(100, %d) = %d bytes, %v", off, n, err)
		}
	}
	if rep, err := st.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
	if _, _, err := st.StoreFlags(ctx, inbox.ID, []uint32{msgs[0].UID}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	st.db.QueryRowContext(ctx, "SELECT count(*) FROM blob_chunks").Scan(&chunks)
	if chunks != 0 {
		t.Fatalf("%d chunks left after expunge", chunks)
	}
}

// TestTruncatedBodyRefused: a body that ends before its stated size stores nothing.
func TestTruncatedBodyRefused(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.AddDomain(ctx, "example.test")
	acct, _ := st.AddAccount(ctx, "alice@example.test", "pw", false)
	msg := bigMessage(2 * chunkSize)
	if _, err := st.Deliver(ctx, &Delivery{Body: bytes.NewReader(msg[:len(msg)-10]), Size: int64(len(msg)),
		Local: []LocalRecipient{{AccountID: acct.ID}}}); err == nil {
		t.Fatal("truncated body stored")
	}
	for _, table := range []string{"blobs", "blob_chunks", "messages"} {
		if n, err := st.CountRows(ctx, table); err != nil || n != 0 {
			t.Fatalf("%d rows in %s, %v", n, table, err)
		}
	}
}
