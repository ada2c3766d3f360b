package imap

import (
	"net"
	"os/exec"
	"strings"
	"testing"
)

// imaplibPreamble opens an IMAP4rev1 session (imaplib never sends ENABLE) over STARTTLS and
// defines helpers: ok() asserts an OK reply, cmd() sends a raw command and returns its status
// and untagged lines, and login() opens another session (for concurrent-session rules).
const imaplibPreamble = `
import imaplib, ssl, sys, time, re
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def login(user='alice@example.test', pw='alice-secret'):
    c = imaplib.IMAP4(host, port)
    c.starttls(ssl_context=ctx)
    ok(c.login(user, pw))
    return c
def ok(r):
    typ, data = r
    assert typ == 'OK', (typ, data)
    return data
def cmd(c, name, *args):
    typ, data = c._simple_command(name, *args)
    return typ, c.untagged_responses.pop(name, []), data
def lines(c, name, *args):
    typ, got, data = cmd(c, name, *args)
    assert typ == 'OK', (name, args, typ, data)
    # Quoting is the server's choice (yy/c1 or "yy/c1"): compare without it.
    return [(g.decode() if isinstance(g, bytes) else repr(g)).replace('"', '') for g in got]
M = login()
`

// runImaplib runs one rule's script after imaplibPreamble against a fresh server; the script
// prints "pass" at its end.
func runImaplib(t *testing.T, e *testEnv, script string) {
	t.Helper()
	interop(t, "/usr/bin/python3")
	host, port, _ := net.SplitHostPort(e.plain)
	out, err := exec.Command("/usr/bin/python3", "-c", imaplibPreamble+script+"\nprint('pass')\n", host, port).CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "pass") {
		t.Fatalf("imaplib: %v\n%s\nserver log:\n%s", err, out, e.logs.String())
	}
}

// TestImaplibSubscriptions: CREATE subscribes the name it was given, not the parents it makes
// on the way; DELETE keeps the subscription (RFC 3501 §6.3.6), so LIST (SUBSCRIBED) shows it
// \NonExistent (RFC 5258 §3.1); LSUB answers an unsubscribed parent of a subscribed name with
// \Noselect when the pattern hides the child (RFC 3501 §6.3.9).
func TestImaplibSubscriptions(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
ok(M.create('yy/c1'))
got = lines(M, 'LSUB', '""', '"yy*"')
assert got == ['(\\HasNoChildren) / yy/c1'], got
ok(M.unsubscribe('yy/c1'))
assert lines(M, 'LSUB', '""', '"yy*"') == []
ok(M.subscribe('yy/c1'))
got = lines(M, 'LSUB', '""', 'yy%')
assert got == ['(\\Noselect) / yy'], got
got = lines(M, 'LSUB', '""', 'yy/%')
assert got == ['(\\HasNoChildren) / yy/c1'], got
ok(M.create('gone'))
ok(M.delete('gone'))
got = lines(M, 'LIST', '(SUBSCRIBED)', '""', 'gone')
assert got == ['(\\NonExistent \\Subscribed) / gone'], got
assert lines(M, 'LIST', '""', 'gone') == []
got = lines(M, 'LIST', '(SUBSCRIBED RECURSIVEMATCH)', '""', '%')
assert '(\\HasChildren) / yy (CHILDINFO (SUBSCRIBED))' in got, got
ok(M.unsubscribe('gone'))
assert lines(M, 'LIST', '(SUBSCRIBED)', '""', 'gone') == []
ok(M.create('gone'))
ok(M.subscribe('gone'))
ok(M.delete('gone'))
ok(M.create('gone'))
got = lines(M, 'LIST', '(SUBSCRIBED)', '""', 'gone')
assert got == ['(\\HasNoChildren \\Subscribed) / gone'], got
typ, _, _ = cmd(M, 'SUBSCRIBE', 'nosuch')
assert typ == 'NO', typ
`)
}
