package imap

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// loggedInRaw opens a cleartext connection, upgrades it with STARTTLS and logs in as alice.
func loggedInRaw(t *testing.T, e *testEnv) *raw {
	t.Helper()
	r := dialRaw(t, e.plain)
	r.send("s STARTTLS\r\n")
	r.expectPrefix("s OK")
	r.startTLS()
	r.send("l LOGIN alice@example.test alice-secret\r\n")
	if l := r.untilTagged("l"); !strings.HasPrefix(l[len(l)-1], "l OK") {
		t.Fatalf("login: %v", l)
	}
	return r
}

// reply sends one command and returns its tagged reply line (untagged lines before it are
// returned too, joined).
func (r *raw) reply(tag, cmd string) (tagged string, all string) {
	r.t.Helper()
	r.send(tag + " " + cmd + "\r\n")
	lines := r.untilTagged(tag)
	return lines[len(lines)-1], strings.Join(lines, "\n")
}

func TestGarbageAfterSTARTTLSIsDiscarded(t *testing.T) {
	e := newEnv(t, nil)
	r := dialRaw(t, e.plain)
	// A man in the middle appends a command to the client's STARTTLS (CVE-2011-0411 style).
	r.send("a STARTTLS\r\nb LOGIN alice@example.test alice-secret\r\nc CREATE Injected\r\n")
	r.expectPrefix("a OK")
	r.startTLS()
	tagged, all := r.reply("d", "CAPABILITY")
	if !strings.HasPrefix(tagged, "d OK") || !strings.Contains(all, "AUTH=PLAIN") {
		t.Fatalf("after STARTTLS the session should be fresh and unauthenticated: %s", all)
	}
	if strings.Contains(all, "b OK") || strings.Contains(all, "c ") {
		t.Errorf("pipelined cleartext was executed: %s", all)
	}
	if _, err := e.st.MailboxByName(context.Background(), e.aliceID, "Injected"); err == nil {
		t.Error("the injected CREATE ran")
	}
}

func TestMalformedCommands(t *testing.T) {
	e := newEnv(t, nil)
	// Before login a single unknown command ends the connection (cross-protocol attacks).
	pre := dialRaw(t, e.plain)
	pre.send("GET / HTTP/1.1\r\n")
	if l := pre.line(); !strings.Contains(l, "BYE") && !strings.Contains(l, "BAD") {
		t.Errorf("HTTP request to IMAP: %q", l)
	}

	r := loggedInRaw(t, e)
	appendRaw(t, r, 3)
	for _, tc := range []struct{ cmd, want string }{
		{"FROB", "BAD"},
		{"SELECT", "BAD"},
		{"FETCH 1 FLAGS", "BAD"}, // not selected
		{"SELECT {abc}", "NO"},
		{"LIST \"\" (", "BAD"},
		{"SEARCH FROB", "BAD [CLIENTBUG]"},
		{"SEARCH SINCE 99-Foo-2020", "BAD"},
		{"SELECT INBOX", "OK"},
		{"FETCH 0 FLAGS", "BAD [CLIENTBUG]"},
		{"FETCH 1:abc FLAGS", "BAD"},
		{"UID FETCH x FLAGS", "BAD"},
		{"SELECT \"&Jjo\"", "NO [CANNOT]"},
		{"LIST \"\" \"&Jjo\"", "NO [CANNOT]"},
		{"FETCH 99 FLAGS", "BAD"},
		{"FETCH 4294967296 FLAGS", "BAD"},
		{"FETCH 1 (FLAGS", "BAD"},
		{"FETCH 1 BODY[9.9.9]", "OK"},
		{"STORE 1 +FLAGS (\\Seen", "BAD"},
		{"STORE 1 FROB (\\Seen)", "BAD"},
		{"UID FETCH 100:200 FLAGS", "OK"},
		{"UID STORE 500 +FLAGS (\\Seen)", "OK"},
		{"UID COPY 1000 Trash", "OK"},
		{"UID EXPUNGE 1000:2000", "OK"},
		{"SEARCH UID 5000:6000", "OK"},
		{"SELECT Nope", "NO [NONEXISTENT]"},
		{"EXAMINE Nope", "NO [NONEXISTENT]"},
		{"STATUS Nope (MESSAGES)", "NO [NONEXISTENT]"},
		{"DELETE Nope", "NO [NONEXISTENT]"},
		{"COPY 1 Nope", "BAD"}, // not selected any more after the failed SELECT
		{"CREATE \"\"", "NO"},
		{"CREATE \"a//b\"", "NO [CANNOT]"},
		{"CREATE \"/lead\"", "NO [CANNOT]"},
		{"CREATE \"star*\"", "NO [CANNOT]"},
		{"CREATE \"pct%\"", "NO [CANNOT]"},
		{"CREATE \"" + strings.Repeat("d/", 32) + "x\"", "NO [CANNOT]"},
		{"CREATE \"" + strings.Repeat("d/", 31) + "x\"", "OK"},
		{"CREATE \"trailing/\"", "OK"},
		{"RENAME INBOX INBOX", "NO"},
		{"LIST \"\" \"" + strings.Repeat("%/", 40) + "\"", "OK"},
	} {
		tagged, all := r.reply("t", tc.cmd)
		if !strings.HasPrefix(tagged, "t "+tc.want) {
			t.Errorf("%s → %s", tc.cmd, all)
		}
	}
	if tagged, all := r.reply("u", "SELECT INBOX"); !strings.HasPrefix(tagged, "u OK") {
		t.Fatal(all)
	}
	// "*" past the end is the last message (RFC 9051 §6.4.8: 100:* is 3:100 here).
	if _, all := r.reply("v", "UID FETCH 100:* (UID)"); !strings.Contains(all, "* 3 FETCH (UID 3)") {
		t.Errorf("UID FETCH 100:*: %s", all)
	}
	if tagged, all := r.reply("w", "COPY 1 Nope"); !strings.HasPrefix(tagged, "w NO [TRYCREATE]") {
		t.Errorf("COPY to unknown mailbox: %s", all)
	}
	// A line longer than imapserver's command limit ends that connection, nothing else.
	r.send("x NOOP " + strings.Repeat("A", 100<<10) + "\r\n")
	r.conn.Close()
	ok := loggedInRaw(t, e)
	if tagged, all := ok.reply("y", "NOOP"); !strings.HasPrefix(tagged, "y OK") {
		t.Errorf("server after an oversized line: %s", all)
	}
}

func appendRaw(t *testing.T, r *raw, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		msg := string(testMessage(fmt.Sprintf("raw %d", i), "body"))
		r.send(fmt.Sprintf("ap APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
		if l := r.untilTagged("ap"); !strings.HasPrefix(l[len(l)-1], "ap OK") {
			t.Fatalf("append: %v", l)
		}
	}
}

func TestLiterals(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageSize = 1000 })
	r := loggedInRaw(t, e)
	// A synchronising literal over APPENDLIMIT is refused before the client sends it.
	r.send("a APPEND INBOX {999999999}\r\n")
	if l := r.line(); !strings.HasPrefix(l, "a NO [TOOBIG]") {
		t.Errorf("huge literal: %q", l)
	}
	if tagged, all := r.reply("b", "NOOP"); !strings.HasPrefix(tagged, "b OK") {
		t.Errorf("after refused literal: %s", all)
	}
	// Literals in other commands are small: refused at once, without a continuation.
	r.send("c LOGIN {5000}\r\n")
	if l := r.line(); !strings.HasPrefix(l, "c NO") && !strings.HasPrefix(l, "c BAD") {
		t.Errorf("big literal in LOGIN: %q", l)
	}
	// A client that does not wait for the continuation still gets its literal read as data.
	r.send("d APPEND INBOX {8}\r\nb NOOP\r\n\r\n")
	lines := r.untilTagged("d")
	if !strings.HasPrefix(lines[len(lines)-1], "d OK") {
		t.Errorf("literal sent without waiting: %v", lines)
	}
	st, _ := e.st.Status(context.Background(), e.mailboxID(t, "INBOX"))
	if st.Messages != 1 {
		t.Errorf("INBOX has %d messages, want the 1 appended", st.Messages)
	}
	// A literal whose data never comes: the connection drops, nothing is stored.
	r.send("e APPEND INBOX {500}\r\n")
	r.expectPrefix("+")
	r.send("only a little")
	r.conn.Close()
	fresh := loggedInRaw(t, e)
	if tagged, all := fresh.reply("f", "STATUS INBOX (MESSAGES)"); !strings.HasPrefix(tagged, "f OK") || !strings.Contains(all, "MESSAGES 1") {
		t.Errorf("after an abandoned literal: %s", all)
	}
}
