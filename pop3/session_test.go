package pop3_test

import (
	"fmt"
	"strings"
	"testing"
)

var (
	msg1 = "From: carol@example.net\r\nSubject: one\r\n\r\nline 1\r\n.line 2 starts with a dot\r\n.\r\nline 4\r\nline 5\r\n"
	msg2 = "Subject: two\r\n\r\n"
	msg3 = "Subject: three\r\nX-Long: " + strings.Repeat("x", 5000) + "\r\n\r\n..\r\n...\r\nbody\r\n"
)

func (h *harness) deliverStrings(user string, msgs ...string) {
	for _, m := range msgs {
		h.mem.Deliver(user, []byte(m))
	}
}

// TestTransaction walks one session through every TRANSACTION command.
func TestTransaction(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1, msg2, msg3)
	total := len(msg1) + len(msg2) + len(msg3)
	uidls := h.mem.UIDLs(alice)

	c := h.dialTLS()
	c.cmd("USER "+alice, "+OK send PASS")
	c.cmd("PASS "+alicePw, fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", total))
	c.cmd("STAT", fmt.Sprintf("+OK 3 %d", total))
	c.cmd("LIST", fmt.Sprintf("+OK 3 messages (%d octets)", total))
	wantList := []string{fmt.Sprintf("1 %d", len(msg1)), fmt.Sprintf("2 %d", len(msg2)), fmt.Sprintf("3 %d", len(msg3))}
	if got := c.multi(); strings.Join(got, "|") != strings.Join(wantList, "|") {
		t.Fatalf("LIST = %q, want %q", got, wantList)
	}
	c.cmd("LIST 2", fmt.Sprintf("+OK 2 %d", len(msg2)))
	c.cmd("UIDL", "+OK unique-id listing follows")
	wantUIDL := []string{"1 " + uidls[0], "2 " + uidls[1], "3 " + uidls[2]}
	if got := c.multi(); strings.Join(got, "|") != strings.Join(wantUIDL, "|") {
		t.Fatalf("UIDL = %q, want %q", got, wantUIDL)
	}
	c.cmd("UIDL 3", "+OK 3 "+uidls[2])
	c.cmd("NOOP", "+OK")

	for i, m := range []string{msg1, msg2, msg3} {
		c.cmd(fmt.Sprintf("RETR %d", i+1), fmt.Sprintf("+OK %d octets", len(m)))
		if got := string(c.multiRaw()); got != stuff(m) {
			t.Fatalf("RETR %d sent %q, want %q", i+1, got, stuff(m))
		}
	}

	// DELE hides the message from STAT, LIST and UIDL and refuses it.
	c.cmd("DELE 1", "+OK message 1 deleted")
	c.cmd("STAT", fmt.Sprintf("+OK 2 %d", len(msg2)+len(msg3)))
	c.cmd("LIST", fmt.Sprintf("+OK 2 messages (%d octets)", len(msg2)+len(msg3)))
	if got := c.multi(); strings.Join(got, "|") != strings.Join(wantList[1:], "|") {
		t.Fatalf("LIST after DELE = %q", got)
	}
	c.cmd("UIDL", "+OK unique-id listing follows")
	if got := c.multi(); strings.Join(got, "|") != strings.Join(wantUIDL[1:], "|") {
		t.Fatalf("UIDL after DELE = %q", got)
	}
	for _, cmd := range []string{"RETR 1", "DELE 1", "LIST 1", "UIDL 1", "TOP 1 0"} {
		c.cmd(cmd, "-ERR message 1 already deleted")
	}
	// RSET undeletes; the session still holds the lock and the snapshot.
	c.cmd("RSET", fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", total))
	c.cmd("LIST 1", fmt.Sprintf("+OK 1 %d", len(msg1)))
	c.cmd("DELE 2", "+OK message 2 deleted")
	c.cmd("QUIT", "+OK bye, 2 messages left")
	c.expectClosed()

	stored := h.mem.Stored(alice)
	if len(stored) != 2 || string(stored[0]) != msg1 || string(stored[1]) != msg3 {
		t.Fatalf("store after QUIT holds %q", stored)
	}
	// UIDLs survive into the next session unchanged.
	c = h.login(alice, alicePw)
	c.cmd("UIDL", "+OK unique-id listing follows")
	if got := c.multi(); strings.Join(got, "|") != "1 "+uidls[0]+"|2 "+uidls[2] {
		t.Fatalf("UIDL in the next session = %q", got)
	}
}

// TestTop checks TOP's header, blank line and body line count (RFC 1939 §7).
func TestTop(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1, msg2, "Subject: header only, no blank line\r\nX-A: b\r\n")
	c := h.login(alice, alicePw)
	head1 := "From: carol@example.net\r\nSubject: one\r\n\r\n"
	tests := []struct {
		cmd, want string
	}{
		{"TOP 1 0", head1},
		{"TOP 1 1", head1 + "line 1\r\n"},
		{"TOP 1 2", head1 + "line 1\r\n.line 2 starts with a dot\r\n"},
		{"TOP 1 3", head1 + "line 1\r\n.line 2 starts with a dot\r\n.\r\n"},
		{"top 1 5", msg1},
		{"TOP 1 99999999", msg1},
		{"TOP 1 99999999999999999999999", msg1},
		{"TOP 2 0", msg2},
		{"TOP 2 10", msg2},
		{"TOP 3 0", "Subject: header only, no blank line\r\nX-A: b\r\n"},
	}
	for _, tt := range tests {
		c.cmd(tt.cmd, "+OK top of message follows")
		if got := string(c.multiRaw()); got != stuff(tt.want) {
			t.Errorf("%s sent %q, want %q", tt.cmd, got, stuff(tt.want))
		}
	}
	for _, bad := range []string{"TOP", "TOP 1", "TOP 1 -1", "TOP 1 x", "TOP 1 2 3"} {
		c.cmdPrefix(bad, "-ERR ")
	}
	c.cmd("TOP 9 1", "-ERR no such message")
	c.cmd("QUIT", "+OK bye, 3 messages left")
}

// TestDropDeletesNothing: DELE takes effect only in UPDATE, which only QUIT
// enters (RFC 1939 §6).
func TestDropDeletesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1, msg2)

	c := h.login(alice, alicePw)
	c.cmd("DELE 1", "+OK message 1 deleted")
	c.cmd("DELE 2", "+OK message 2 deleted")
	c.conn.Close() // dropped connection: no UPDATE
	// The lock is released once the server notices; then a new session sees both.
	c = h.loginRetry(alice, alicePw)
	c.cmd("STAT", fmt.Sprintf("+OK 2 %d", len(msg1)+len(msg2)))
	c.cmd("DELE 1", "+OK message 1 deleted")
	c.cmd("RSET", fmt.Sprintf("+OK maildrop has 2 messages (%d octets)", len(msg1)+len(msg2)))
	c.cmd("QUIT", "+OK bye, 2 messages left")
	c.expectClosed()
	if n := len(h.mem.Stored(alice)); n != 2 {
		t.Fatalf("after drop and RSET the store holds %d messages, want 2", n)
	}

	c = h.login(alice, alicePw)
	c.cmd("DELE 2", "+OK message 2 deleted")
	c.cmd("QUIT", "+OK bye, 1 messages left")
	c.expectClosed()
	if got := h.mem.Stored(alice); len(got) != 1 || string(got[0]) != msg1 {
		t.Fatalf("after DELE 2 and QUIT the store holds %q", got)
	}
}

// loginRetry logs in, retrying while the previous session still holds the
// maildrop lock (the server has not yet noticed a dropped connection).
func (h *harness) loginRetry(user, pw string) *client {
	h.t.Helper()
	for i := 0; ; i++ {
		c := h.dialTLS()
		c.cmd("USER "+user, "+OK send PASS")
		reply := c.cmdPrefix("PASS "+pw, "")
		if strings.HasPrefix(reply, "+OK maildrop has ") {
			return c
		}
		if !strings.HasPrefix(reply, "-ERR [IN-USE]") || i == 1000 {
			h.t.Fatalf("login: %q", reply)
		}
		c.conn.Close()
		waitBriefly()
	}
}

// TestInUse: a second session on the same maildrop gets [IN-USE]
// (RFC 2449 §8.1.1), whatever spelling of the name it uses.
func TestInUse(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1)
	first := h.login(alice, alicePw)

	second := h.dialTLS()
	second.cmd("USER ALICE@Example.COM", "+OK send PASS")
	second.cmd("PASS "+alicePw, "-ERR [IN-USE] maildrop is in use by another session")
	// Still in AUTHORIZATION: another user may log in on this connection.
	second.cmd("STAT", "-ERR STAT is not valid before login")
	second.cmd("USER "+bob, "+OK send PASS")
	second.cmd("PASS "+bobPw, "+OK maildrop has 0 messages (0 octets)")
	second.cmd("QUIT", "+OK bye, 0 messages left")

	first.cmd("QUIT", "+OK bye, 1 messages left")
	first.expectClosed()
	third := h.login(alice, alicePw)
	third.cmd("STAT", fmt.Sprintf("+OK 1 %d", len(msg1)))
}

// TestMessageGone: a message expunged elsewhere after the snapshot gives
// -ERR, and the session goes on (RFC 1939 §5 snapshot semantics).
func TestMessageGone(t *testing.T) {
	h := newHarness(t, nil)
	id := h.mem.Deliver(alice, []byte(msg1))
	h.deliverStrings(alice, msg2)
	c := h.login(alice, alicePw)
	h.mem.Expunge(alice, id)

	c.cmd("RETR 1", "-ERR message 1 no longer exists")
	c.cmd("TOP 1 0", "-ERR message 1 no longer exists")
	c.cmd("LIST 1", fmt.Sprintf("+OK 1 %d", len(msg1))) // the snapshot is unchanged
	c.cmd("RETR 2", fmt.Sprintf("+OK %d octets", len(msg2)))
	c.multiRaw()
	c.cmd("DELE 1", "+OK message 1 deleted")
	c.cmd("QUIT", "+OK bye, 1 messages left")
	c.expectClosed()
	if got := h.mem.Stored(alice); len(got) != 1 || string(got[0]) != msg2 {
		t.Fatalf("store holds %q", got)
	}
}

// TestWrongState: commands outside their state get -ERR and change nothing.
func TestWrongState(t *testing.T) {
	h := newHarness(t, manyErrors)
	h.deliverStrings(alice, msg1)
	c := h.dialTLS()
	for _, cmd := range []string{"STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "NOOP", "RSET", "UIDL", "TOP 1 1"} {
		keyword, _, _ := strings.Cut(cmd, " ")
		c.cmd(cmd, "-ERR "+keyword+" is not valid before login")
	}
	c.cmd("PASS "+alicePw, "-ERR USER first")
	c.cmd("APOP alice 0123456789abcdef0123456789abcdef", "-ERR APOP is not supported")
	c.cmd("XYZZY", "-ERR unknown command")
	c.cmd("", "-ERR unknown command")
	c.cmd("USER "+alice, "+OK send PASS")
	c.cmd("PASS "+alicePw, fmt.Sprintf("+OK maildrop has 1 messages (%d octets)", len(msg1)))
	for _, cmd := range []string{"USER " + alice, "PASS x", "AUTH PLAIN", "STLS", "APOP a b"} {
		keyword, _, _ := strings.Cut(cmd, " ")
		c.cmd(cmd, "-ERR "+keyword+" is not valid after login")
	}
	c.cmd("XYZZY", "-ERR unknown command")
	c.cmd("STAT x", "-ERR STAT takes no argument")
	c.cmd("RSET x", "-ERR RSET takes no argument")
	c.cmd("stat", fmt.Sprintf("+OK 1 %d", len(msg1))) // keywords are case-insensitive
	c.cmd("QUIT", "+OK bye, 1 messages left")
}

// TestBadMessageNumbers: numbers outside the snapshot and malformed ones.
func TestBadMessageNumbers(t *testing.T) {
	h := newHarness(t, manyErrors)
	h.deliverStrings(alice, msg1, msg2)
	c := h.login(alice, alicePw)
	for _, arg := range []string{"0", "3", "-1", "+1", "1.0", "abc", "99999999999999999999", "0x1", "\x00"} {
		for _, cmd := range []string{"RETR", "DELE", "LIST", "UIDL"} {
			c.cmd(cmd+" "+arg, "-ERR no such message")
		}
		c.cmd("TOP "+arg+" 1", "-ERR no such message")
	}
	for _, cmd := range []string{"RETR", "DELE"} {
		c.cmd(cmd, "-ERR "+cmd+" takes one message number")
		c.cmd(cmd+" 1 2", "-ERR "+cmd+" takes one message number")
	}
	c.cmd("LIST 1 2", "-ERR too many arguments")
}
