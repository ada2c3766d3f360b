package pop3_test

import (
	"testing"

	"mailstead/pop3/pop3test"
)

// interopMessages are awkward on purpose: dot lines that need stuffing, a
// line that is only a dot, an empty body, 8-bit bytes and a long line.
func interopMessages() [][]byte {
	long := make([]byte, 998) // RFC 5322 §2.1.1 limit; poplib refuses lines over 2048
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	return [][]byte{
		[]byte("From: carol@example.net\r\nTo: alice@example.com\r\nSubject: first\r\n\r\nHello Alice.\r\n.\r\n..two dots\r\n.leading dot\r\nlast line\r\n"),
		[]byte("Subject: empty body\r\n\r\n"),
		[]byte("Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9 \xe2\x82\xac\r\n" + string(long) + "\r\n\r\n.\r\nend\r\n"),
	}
}

func (h *harness) deliverAll(user string, msgs [][]byte) {
	for _, m := range msgs {
		h.mem.Deliver(user, m)
	}
}

func (h *harness) target(implicit bool) pop3test.Target {
	addr := h.plain
	if implicit {
		addr = h.implicit
	}
	return pop3test.Target{Addr: addr, ImplicitTLS: implicit, CAFile: h.tls.CAFile, User: alice, Password: alicePw}
}

func TestInteropPoplib(t *testing.T) {
	for _, implicit := range []bool{true, false} {
		name := map[bool]string{true: "implicit TLS", false: "STLS"}[implicit]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			msgs := interopMessages()
			h.deliverAll(alice, msgs)
			// Keep: everything stays, UIDLs are what the store says.
			pop3test.CheckPoplib(t, h.target(implicit), msgs, h.mem.UIDLs(alice), false)
			if got := len(h.mem.Stored(alice)); got != len(msgs) {
				t.Fatalf("after a keeping session the store holds %d messages, want %d", got, len(msgs))
			}
			// Delete: DELE everything and QUIT empties the maildrop.
			pop3test.CheckPoplib(t, h.target(implicit), msgs, nil, true)
			if got := len(h.mem.Stored(alice)); got != 0 {
				t.Fatalf("after DELE and QUIT the store holds %d messages", got)
			}
		})
	}
}

func TestInteropFetchmail(t *testing.T) {
	for _, implicit := range []bool{true, false} {
		name := map[bool]string{true: "implicit TLS", false: "STLS"}[implicit]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			msgs := interopMessages()
			h.deliverAll(alice, msgs)
			state := t.TempDir()

			// Keep mode: fetches everything, leaves it on the server, and a
			// second run fetches nothing because the UIDLs are stable.
			pop3test.CheckFetchmail(t, h.target(implicit), msgs, true, state)
			if got := len(h.mem.Stored(alice)); got != len(msgs) {
				t.Fatalf("keep mode: store holds %d messages, want %d", got, len(msgs))
			}
			pop3test.CheckFetchmail(t, h.target(implicit), nil, true, state)

			// A new message is fetched alone in keep mode.
			extra := []byte("Subject: later\r\n\r\n.\r\n")
			h.mem.Deliver(alice, extra)
			pop3test.CheckFetchmail(t, h.target(implicit), [][]byte{extra}, true, state)

			// Delete mode: fetches everything and empties the maildrop.
			all := append(append([][]byte{}, msgs...), extra)
			pop3test.CheckFetchmail(t, h.target(implicit), all, false, t.TempDir())
			if got := len(h.mem.Stored(alice)); got != 0 {
				t.Fatalf("delete mode: store still holds %d messages", got)
			}
		})
	}
}
