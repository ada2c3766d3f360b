package server_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest"
)

// A message of several store chunks (256 KiB each) relays A→B byte for byte: the queue streams
// it from the store, dot-stuffing lines that start with "." wherever they fall in a chunk.
func TestRelayLargeMessageByteForByte(t *testing.T) {
	p := newPair(t, nil)
	p.startB(t)
	var b strings.Builder
	b.WriteString("From: Alice <alice@a.test>\nTo: Bob <bob@b.test>\nSubject: the big file\n" +
		"Date: Fri, 04 Dec 2026 20:00:00 +0000\nMessage-ID: <big-1@a.test>\n\n")
	for i := 0; b.Len() < 3<<20; i++ {
		if i%37 == 0 {
			b.WriteString(".") // needs dot-stuffing on the wire (RFC 5321 §4.5.2)
		}
		fmt.Fprintf(&b, "%08d the quick brown fox jumps over the lazy dog %x\n", i, i*2654435761)
	}
	msg := b.String()
	if err := submit(t, p.a, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test"}, msg); err != nil {
		t.Fatal(err)
	}
	var got []byte
	waitFor(t, "bob's copy at B", 60*time.Second, func() bool {
		box := mailtest.Mailbox(t, p.b.Store(), "bob@b.test", "INBOX")
		if len(box) == 1 {
			got = box[0]
		}
		return len(box) == 1
	})
	waitFor(t, "A's queue to empty", 30*time.Second, func() bool { return len(queueOf(t, p.a.Store())) == 0 })
	// A and B only prepend fields (DKIM-Signature, Received, Authentication-Results).
	want := []byte(strings.ReplaceAll(msg, "\n", "\r\n"))
	if !bytes.HasSuffix(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[len(got)-1-i] == want[len(want)-1-i] {
			i++
		}
		t.Fatalf("bob's copy (%d bytes) does not end with the %d bytes sent; they agree on the last %d", len(got), len(want), i)
	}
}
