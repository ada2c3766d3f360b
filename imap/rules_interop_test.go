package imap

import (
	"context"
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

// TestImaplibRecent: in IMAP4rev1 sessions \Recent marks mail no session has seen yet, and
// exactly one session holds it (RFC 3501 §2.3.2): SELECT and STATUS count it, SEARCH RECENT,
// NEW and OLD use it, EXAMINE shows it without taking it, clients cannot set it.
func TestImaplibRecent(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
msg = b'From: py@example.test\r\nSubject: recent\r\n\r\nbody\r\n'
def recent(c):
    typ, data = c.response('RECENT')
    return [int(x) for x in data if x is not None]
ok(M.append('INBOX', None, None, msg))
ok(M.append('INBOX', None, None, msg))
st = ok(M.status('INBOX', '(RECENT MESSAGES)'))[0].decode()
assert 'RECENT 2' in st, st
E = login()
ok(E.select('INBOX', readonly=True))
assert recent(E) == [2], 'EXAMINE shows recent'
A = login()
ok(A.select('INBOX'))
assert recent(A) == [2], 'SELECT takes the recent messages'
assert '\\\\Recent' in repr(ok(A.fetch('1:2', '(FLAGS)'))), 'FETCH FLAGS has \\Recent'
assert ok(A.search(None, 'RECENT'))[0] == b'1 2'
assert ok(A.search(None, 'NEW'))[0] == b'1 2'
ok(A.fetch('1', '(BODY[])'))
assert ok(A.search(None, 'NEW'))[0] == b'2'
assert ok(A.search(None, 'OLD'))[0] == b''
ok(A.store('1', 'FLAGS', '(\\Seen)'))
assert '\\\\Recent' in repr(ok(A.fetch('1', '(FLAGS)'))), 'STORE FLAGS keeps \\Recent'
ok(A.store('2', '+FLAGS', '(\\Recent)'))
assert 'RECENT 0' in ok(M.status('INBOX', '(RECENT)'))[0].decode()
B = login()
ok(B.select('INBOX'))
assert recent(B) == [0], 'a second SELECT finds nothing recent'
assert ok(B.search(None, 'OLD'))[0] == b'1 2'
assert ok(B.search(None, 'RECENT'))[0] == b''
assert '\\\\Recent' not in repr(ok(B.fetch('1:2', '(FLAGS)')))
ok(M.append('INBOX', None, None, msg))
ok(A.noop())
ok(B.noop())
a, b = recent(A), recent(B)
assert sorted([a[-1], b[-1]]) in ([0, 3], [1, 2]), ('one session gains one recent message', a, b)
holders = [c for c in (A, B) if ok(c.search(None, 'RECENT'))[0].split()[-1:] == [b'3']]
assert len(holders) == 1, 'exactly one session holds message 3 as recent'
ok(E.select('INBOX', readonly=True))
assert recent(E) == [0]
`)
}

// TestImaplibNewKeyword: STORE with a keyword the mailbox never used sends FLAGS and
// PERMANENTFLAGS with it, in that session and in another that has the mailbox selected.
func TestImaplibNewKeyword(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
ok(M.append('INBOX', None, None, b'Subject: k\r\n\r\nx\r\n'))
ok(M.select('INBOX'))
B = login()
ok(B.select('INBOX'))
typ, data = M.store('1', '+FLAGS', '($Hot)')
assert typ == 'OK', data
flags = M.response('FLAGS')[1]
assert flags and b'$Hot' in flags[-1], flags
perm = [x for x in M.response('OK')[1] if x and b'PERMANENTFLAGS' in x]
assert perm and b'$Hot' in perm[-1] and b'\\*' in perm[-1], perm
typ, data = M.store('1', '+FLAGS.SILENT', '($Cold)')
assert b'$Cold' in M.response('FLAGS')[1][-1]
ok(B.noop())
flags = B.response('FLAGS')[1]
assert flags and b'$Hot' in flags[-1] and b'$Cold' in flags[-1], flags
`)
}

// TestImaplibBadAndNo: an unknown command before login is BAD and the session goes on (only a
// run of them ends it); a name that is a valid astring but not modified UTF-7 is NO for SELECT
// and LIST, not BAD or a server error.
func TestImaplibBadAndNo(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
imaplib.Commands['FROB'] = ('NONAUTH', 'AUTH', 'SELECTED')
P = imaplib.IMAP4(host, port)
P.starttls(ssl_context=ctx)
try:
    P._simple_command('FROB')
    assert False, 'FROB accepted'
except imaplib.IMAP4.error as e:
    assert 'BAD' in str(e) or 'Unknown command' in str(e), e
ok(P.login('alice@example.test', 'alice-secret'))
typ, data = P._simple_command('SELECT', '"&Jjo"')
assert typ == 'NO' and b'[CANNOT]' in data[-1], (typ, data)
typ, data = P._simple_command('LIST', '""', '"&Jjo"')
assert typ == 'NO' and b'[CANNOT]' in data[-1], (typ, data)
ok(P.select('INBOX'))
Q = imaplib.IMAP4(host, port)
for i in range(3):
    try:
        Q._simple_command('FROB')
    except imaplib.IMAP4.error:
        pass
    except imaplib.IMAP4.abort:
        break
try:
    Q.noop()
    assert False, 'three unknown commands before login did not end the session'
except (imaplib.IMAP4.abort, OSError, EOFError):
    pass
`)
}

// TestImaplibBinaryLiteral: an APPEND with a literal8 (~{n}) is stored byte for byte (RFC 3516
// §4.4), BINARY[1] returns the part in a literal8, and BODY[] of it, which would put NUL in an
// ordinary literal, is refused.
func TestImaplibBinaryLiteral(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
msg = (b'From: bin@example.test\r\nSubject: binary\r\nMIME-Version: 1.0\r\n'
       b'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'
       b'\x00\x01bare\nlf\rcr\r\n')
M.send(b'b1 APPEND INBOX ~{%d}\r\n' % len(msg))
assert M.readline().startswith(b'+'), 'continuation'
M.send(msg + b'\r\n')
while True:
    line = M.readline()
    if line.startswith(b'b1 '):
        break
assert line.startswith(b'b1 OK'), line
ok(M.select('INBOX'))
data = ok(M.fetch('1', '(RFC822.SIZE BINARY.PEEK[1])'))
assert ('RFC822.SIZE %d ' % len(msg)).encode() in data[0][0], data
assert data[0][1] == b'\x00\x01bare\nlf\rcr\r\n', data
typ, data = M.fetch('1', '(BODY.PEEK[])')
assert typ == 'NO' and b'[CANNOT]' in data[-1], (typ, data)
ok(M.append('INBOX', None, None, b'Subject: text\n\nbare lf\n'))
data = ok(M.fetch('2', '(BODY.PEEK[])'))
assert data[0][1] == b'Subject: text\r\n\r\nbare lf\r\n', data
`)
}

// TestImaplibEnvelopeAddresses: ENVELOPE keeps groups as RFC 3501 §7.4.2 writes them, an empty
// group included, and finds the mailbox in a source route or with comments between its parts;
// SEARCH FROM finds that mailbox.
func TestImaplibEnvelopeAddresses(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
msg = (b'From: <user-from (comment)@ (comment) domain.org>\r\n'
       b'Sender: <@route.example:route-user@domain.org>\r\n'
       b'To: undisclosed-recipients:;\r\n'
       b'Cc: A Group:Ed Jones <c@a.test>,joe@where.test;, solo@b.test\r\n'
       b'Subject: groups\r\n\r\nbody\r\n')
ok(M.append('INBOX', None, None, msg))
ok(M.select('INBOX'))
env = ok(M.fetch('1', '(ENVELOPE)'))[0].decode()
assert '((NIL NIL "user-from" "domain.org"))' in env, env
assert '((NIL NIL "route-user" "domain.org"))' in env, env
assert '((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))' in env, env
assert ('((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")'
        '(NIL NIL NIL NIL)(NIL NIL "solo" "b.test"))') in env, env
assert ok(M.search(None, 'FROM', 'user-from@domain.org'))[0] == b'1'
assert ok(M.search(None, 'CC', 'joe@where.test'))[0] == b'1'
assert ok(M.search(None, 'FROM', 'nobody@domain.org'))[0] == b''
`)
}

// TestImaplibQuota: GETQUOTAROOT and GETQUOTA show the account's STORAGE use and limit in KiB
// (RFC 9208 §4.1, §5.1); an APPEND or COPY that would exceed it is NO [OVERQUOTA] and stores
// nothing; STATUS DELETED-STORAGE counts \Deleted mail; an account without a quota has no root.
func TestImaplibQuota(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.st.SetQuota(context.Background(), alice, 10*1024); err != nil {
		t.Fatal(err)
	}
	runImaplib(t, e, `
msg = b'Subject: q\r\n\r\n' + b'x' * 4000 + b'\r\n'
ok(M.append('INBOX', None, None, msg))
typ, data = M.getquotaroot('INBOX')
assert typ == 'OK', data
assert data[0] == [b'INBOX ""'], data
assert data[1] == [b'"" (STORAGE 4 10)'], data
typ, data = M.getquota('""')
assert typ == 'OK' and data == [b'"" (STORAGE 4 10)'], data
ok(M.append('INBOX', None, None, msg))
typ, data = M.append('INBOX', None, None, msg)
assert typ == 'NO' and b'[OVERQUOTA]' in data[0], (typ, data)
ok(M.select('INBOX'))
typ, data = M.copy('1', 'Archive')
assert typ == 'NO' and b'[OVERQUOTA]' in data[0], (typ, data)
assert 'MESSAGES 0' in ok(M.status('Archive', '(MESSAGES)'))[0].decode()
ok(M.store('1', '+FLAGS', '(\\Deleted)'))
st = ok(M.status('INBOX', '(DELETED DELETED-STORAGE)'))[0].decode()
assert 'DELETED 1' in st and 'DELETED-STORAGE 4' in st, st
ok(M.expunge())
ok(M.copy('1', 'Archive'))
typ, data = M.getquota('other')
assert typ == 'NO', (typ, data)
B = login('bob@example.test', 'bob-secret')
typ, data = B.getquotaroot('INBOX')
assert typ == 'OK' and data[0] == [b'INBOX'], data
`)
}

// TestImaplibID: ID (RFC 2971) works before and after login, with a field list or NIL, and
// answers with the server's name; malformed lists are BAD.
func TestImaplibID(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
imaplib.Commands['ID'] = ('NONAUTH', 'AUTH', 'SELECTED')
P = imaplib.IMAP4(host, port)
assert 'ID' in P.capabilities, P.capabilities
typ, got, data = cmd(P, 'ID', '("name" "imaplib" "version" "3")')
assert typ == 'OK' and got == [b'("name" "mailstead" "vendor" "mailstead")'], (typ, got, data)
typ, got, data = cmd(M, 'ID', 'NIL')
assert typ == 'OK' and b'"name" "mailstead"' in got[0], (typ, got)
for bad in ['("name")', '(', 'FOO', '("%s" "x")' % ('k' * 31)]:
    try:
        typ, got, data = cmd(M, 'ID', bad)
        assert False, ('accepted', bad, typ)
    except imaplib.IMAP4.error as e:
        assert 'BAD' in str(e) or 'Syntax' in str(e) or 'ID' in str(e), e
ok(M.noop())
`)
}

// TestImaplibWithin: SEARCH YOUNGER and OLDER (RFC 5032) compare INTERNALDATE with now to the
// second, inside NOT and OR too; 0 seconds is BAD.
func TestImaplibWithin(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
ok(M.append('INBOX', None, imaplib.Time2Internaldate(time.time() - 7200), b'Subject: old\r\n\r\nx\r\n'))
ok(M.append('INBOX', None, imaplib.Time2Internaldate(time.time() - 1800), b'Subject: middle\r\n\r\nx\r\n'))
ok(M.append('INBOX', None, None, b'Subject: new\r\n\r\nx\r\n'))
ok(M.select('INBOX'))
assert ok(M.search(None, 'YOUNGER', '600'))[0] == b'3'
assert ok(M.search(None, 'OLDER', '3600'))[0] == b'1'
assert ok(M.search(None, 'YOUNGER', '3600', 'OLDER', '600'))[0] == b'2'
assert ok(M.search(None, 'NOT', 'YOUNGER', '3600'))[0] == b'1'
assert ok(M.search(None, 'OR', 'YOUNGER', '600', 'OLDER', '3600'))[0] == b'1 3'
assert ok(M.uid('SEARCH', 'YOUNGER', '36000'))[0] == b'1 2 3'
try:
    M.search(None, 'YOUNGER', '0')
    assert False, 'YOUNGER 0 accepted'
except imaplib.IMAP4.error as e:
    assert 'BAD' in str(e) or 'RFC 5032' in str(e), e
`)
}

// TestImaplibPreview: FETCH PREVIEW (RFC 8970) gives the decoded start of the first text part,
// white space collapsed, at most 256 characters, from HTML when there is no plain text, "" for
// a message without text; PREVIEW (LAZY) is the same; \Seen is not set.
func TestImaplibPreview(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
long = 'word ' * 100
plain = ('From: a@example.test\r\nSubject: p\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n'
         '--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
         'Gr=FC=DFe,\r\n\r\n  the   meeting\r\nmoved. ' + long + '\r\n--b\r\nContent-Type: application/pdf\r\n\r\nxx\r\n--b--\r\n').encode()
html = b'Subject: h\r\nContent-Type: text/html\r\n\r\n<html><style>p{}</style><p>Hello&nbsp;<b>there</b></p></html>\r\n'
none = b'Subject: n\r\nContent-Type: image/png\r\n\r\nxxxx\r\n'
for m in (plain, html, none):
    ok(M.append('INBOX', None, None, m))
ok(M.select('INBOX'))
typ, got, data = cmd(M, 'FETCH', '1:3', '(PREVIEW)')
assert typ == 'OK', data
got = [g for g in got if g != b')']  # imaplib's remainder after a literal
# Non-ASCII text comes as a literal (imaplib gives a (prefix, text) pair), ASCII quoted.
assert isinstance(got[0], tuple) and got[0][0].startswith(b'1 (PREVIEW {'), got[0]
p1 = got[0][1].decode('utf-8')
assert p1.startswith('Grüße, the meeting moved. word word'), p1
assert len(p1) == 256, (len(p1), p1)
assert '"Hello there"' in got[1].decode(), got[1]
assert got[2] == b'3 (PREVIEW "")', got[2]
typ, got, data = cmd(M, 'FETCH', '2', '(UID PREVIEW (LAZY) FLAGS)')
assert typ == 'OK' and b'"Hello there"' in got[0] and b'\\Seen' not in got[0], got
`)
}
