package imap

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailstead/mailtest/testkit"
	"mailstead/store"
)

// interop skips unless MAILSTEAD_INTEROP=1; then a missing tool is a failure (Debian packages:
// python3 for imaplib, isync for mbsync).
func interop(t *testing.T, tool string) string {
	t.Helper()
	if os.Getenv("MAILSTEAD_INTEROP") != "1" {
		t.Skip("interop test: set MAILSTEAD_INTEROP=1")
	}
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("MAILSTEAD_INTEROP=1 but %s is missing: %v", tool, err)
	}
	return path
}

const imaplibScript = `
import imaplib, ssl, sys, time
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
M = imaplib.IMAP4(host, port)
typ, caps = M.capability()
assert b'LOGINDISABLED' in caps[0], caps
M.starttls(ssl_context=ctx)
def ok(r):
    typ, data = r
    assert typ == 'OK', (typ, data)
    return data
ok(M.login('alice@example.test', 'alice-secret'))
caps = ok(M.capability())[0].decode()
for c in ['IMAP4rev2', 'IDLE', 'MOVE', 'UIDPLUS', 'SPECIAL-USE', 'LITERAL+']:
    assert c in caps, caps
ok(M.noop())
ok(M.create('Py/Sub'))
names = b'\n'.join(ok(M.list('""', '*'))).decode()
assert '"Py/Sub"' in names or 'Py/Sub' in names, names
assert '\\Sent' in names, names
ok(M.subscribe('Py/Sub'))
assert b'Py/Sub' in b'\n'.join(ok(M.lsub('""', 'Py/*')))
ok(M.unsubscribe('Py/Sub'))
ok(M.rename('Py/Sub', 'Py/Renamed'))
msg = b'From: py@example.test\r\nSubject: from imaplib\r\nDate: Wed, 04 Jan 2006 10:00:00 +0000\r\n\r\nhello from python\r\n'
typ, data = M.append('INBOX', '(\\Flagged $Py)', imaplib.Time2Internaldate(time.time()), msg)
assert typ == 'OK' and b'APPENDUID' in data[0], data
ok(M.append('INBOX', None, None, msg.replace(b'imaplib', b'second')))
n = int(ok(M.select('INBOX'))[0])
assert n == 2, n
st = ok(M.status('INBOX', '(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)'))[0].decode()
assert 'MESSAGES 2' in st and 'UNSEEN 2' in st, st
data = ok(M.fetch('1', '(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])'))
flat = repr(data)
assert '$Py' in flat and '\\\\Flagged' in flat and 'from imaplib' in flat and 'RFC822.SIZE %d' % len(msg) in flat, flat
data = ok(M.fetch('1', '(BODY[])'))
assert data[0][1] == msg, data
assert '\\\\Seen' in repr(ok(M.fetch('1', '(FLAGS)')))
ok(M.store('2', '+FLAGS', '(\\Answered)'))
assert ok(M.search(None, 'ANSWERED'))[0] == b'2'
assert ok(M.search(None, 'OR', 'FLAGGED', 'ANSWERED'))[0] == b'1 2'
assert ok(M.search(None, 'BODY', 'python'))[0] == b'1 2'
assert ok(M.search(None, 'HEADER', 'Subject', 'second'))[0] == b'2'
assert ok(M.search(None, 'NOT', 'SEEN'))[0] == b'2'
assert ok(M.uid('SEARCH', 'UID', '2:*'))[0] == b'2'
typ, data = M.uid('COPY', '1', 'Py/Renamed')
assert typ == 'OK', data
typ, data = M.uid('MOVE', '2', 'Archive')
assert typ == 'OK', data
ok(M.store('1', '+FLAGS.SILENT', '(\\Deleted)'))
ok(M.expunge())
ok(M.close())
st = ok(M.status('Py/Renamed', '(MESSAGES)'))[0].decode()
assert 'MESSAGES 1' in st, st
ok(M.select('Archive', readonly=True))
ok(M.unselect() if hasattr(M, 'unselect') else M.close())
ok(M.delete('Py/Renamed'))
typ, data = M.namespace()
assert typ == 'OK', data
M.logout()
print('imaplib session complete')
`

func TestInteropPythonImaplib(t *testing.T) {
	interop(t, "/usr/bin/python3")
	e := newEnv(t, nil)
	host, port, _ := net.SplitHostPort(e.plain)
	out, err := exec.Command("/usr/bin/python3", "-c", imaplibScript, host, port).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imaplib session complete") {
		t.Fatalf("imaplib: %v\n%s\nserver log:\n%s", err, out, e.logs.String())
	}
}

// writeCertPEM saves the server's certificate for mbsync's CertificateFile.
func writeCertPEM(t *testing.T, cfg *tls.Config, path string) {
	der := cfg.Certificates[0].Certificate[0]
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestInteropMbsync syncs 1,000 messages to a local Maildir and back: local and remote flag
// changes and moves round-trip, and a further run changes nothing on either side.
func TestInteropMbsync(t *testing.T) {
	mbsync := interop(t, "mbsync")
	tlsCfg := testkit.SelfSignedTLS(t, "mail.example.test")
	e := newEnv(t, func(c *Config) { c.TLSConfig = tlsCfg })
	ctx := context.Background()
	inbox := e.mailboxID(t, "INBOX")
	for i := 0; i < 1000; i++ {
		if _, _, err := e.st.Append(ctx, inbox, testMessage(fmt.Sprintf("msg-%04d", i), "body"), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	writeCertPEM(t, tlsCfg, filepath.Join(dir, "cert.pem"))
	maildir := filepath.Join(dir, "mail")
	os.MkdirAll(maildir, 0o700)
	_, port, _ := net.SplitHostPort(e.implicit)
	rc := fmt.Sprintf(`IMAPAccount test
Host 127.0.0.1
Port %s
User alice@example.test
Pass alice-secret
SSLType IMAPS
CertificateFile %s
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
Sync All
`, port, filepath.Join(dir, "cert.pem"), maildir, maildir)
	rcPath := filepath.Join(dir, "mbsyncrc")
	os.WriteFile(rcPath, []byte(rc), 0o600)
	run := func(what string) {
		t.Helper()
		cmd := exec.Command(mbsync, "-c", rcPath, "-a")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync %s: %v\n%s\nserver log:\n%s", what, err, out, e.logs.String())
		}
	}
	files := func(box string) []string {
		var out []string
		for _, sub := range []string{"cur", "new"} {
			ents, _ := os.ReadDir(filepath.Join(maildir, box, sub))
			for _, en := range ents {
				out = append(out, filepath.Join(maildir, box, sub, en.Name()))
			}
		}
		sort.Strings(out)
		return out
	}
	subjectOf := func(path string) string {
		b, _ := os.ReadFile(path)
		m := regexp.MustCompile(`Subject: (\S+)`).FindSubmatch(b)
		if m == nil {
			return ""
		}
		return string(m[1])
	}

	run("first sync")
	local := files("INBOX")
	if len(local) != 1000 {
		t.Fatalf("local INBOX has %d messages after the first sync, want 1000", len(local))
	}

	// Local changes: flag msg-0010 (F) and read msg-0011 (S); move msg-0012 to Archive.
	uidRE := regexp.MustCompile(`,U=\d+`)
	for _, p := range local {
		switch subjectOf(p) {
		case "msg-0010", "msg-0011":
			flag := "F"
			if subjectOf(p) == "msg-0011" {
				flag = "S"
			}
			base := strings.SplitN(filepath.Base(p), ":2,", 2)[0]
			if err := os.Rename(p, filepath.Join(maildir, "INBOX", "cur", base+":2,"+flag)); err != nil {
				t.Fatal(err)
			}
		case "msg-0012":
			os.MkdirAll(filepath.Join(maildir, "Archive", "cur"), 0o700)
			if err := os.Rename(p, filepath.Join(maildir, "Archive", "cur", uidRE.ReplaceAllString(filepath.Base(p), ""))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Remote changes: flag msg-0020, move msg-0021 to Archive, over IMAP.
	c := e.login(t, alice, alicePW, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(imap.UIDSetNum(21), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.UIDSetNum(22), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()

	run("second sync")
	subjects := func(mailbox string) map[string][]string {
		t.Helper()
		out := map[string][]string{}
		snap, err := e.st.Snapshot(ctx, e.mailboxID(t, mailbox))
		if err != nil {
			t.Fatal(err)
		}
		e.st.FetchMeta(ctx, snap.ID, snap.UIDs, true, func(m *store.MessageMeta) error {
			env, _ := decodeEnvelope(m.Envelope)
			out[env.Subject] = m.Flags
			return nil
		})
		return out
	}
	remoteInbox, remoteArchive := subjects("INBOX"), subjects("Archive")
	if len(remoteInbox) != 998 || !slices.Contains(remoteInbox["msg-0010"], `\Flagged`) || !slices.Contains(remoteInbox["msg-0011"], `\Seen`) {
		t.Errorf("server INBOX after sync: %d messages, msg-0010 %v, msg-0011 %v", len(remoteInbox), remoteInbox["msg-0010"], remoteInbox["msg-0011"])
	}
	if _, ok := remoteArchive["msg-0012"]; !ok || len(remoteArchive) != 2 {
		t.Errorf("server Archive after sync: %v", remoteArchive)
	}
	localFlags := map[string]string{}
	for _, p := range files("INBOX") {
		_, fl, _ := strings.Cut(filepath.Base(p), ":2,")
		localFlags[subjectOf(p)] = fl
	}
	if len(localFlags) != 998 || !strings.Contains(localFlags["msg-0020"], "F") {
		t.Errorf("local INBOX after sync: %d messages, msg-0020 flags %q", len(localFlags), localFlags["msg-0020"])
	}
	var archived []string
	for _, p := range files("Archive") {
		archived = append(archived, subjectOf(p))
	}
	sort.Strings(archived)
	if !slices.Equal(archived, []string{"msg-0012", "msg-0021"}) {
		t.Errorf("local Archive after sync: %v", archived)
	}

	// A further run changes nothing: same HIGHESTMODSEQ and UIDNEXT on the server, same files here.
	state := func() string {
		var b strings.Builder
		for _, name := range []string{"INBOX", "Archive"} {
			st, _ := e.st.Status(ctx, e.mailboxID(t, name))
			fmt.Fprintf(&b, "%s %d %d %d\n", name, st.HighestModSeq, st.UIDNext, st.Messages)
			for _, f := range files(name) {
				b.WriteString(filepath.Base(f) + "\n")
			}
		}
		return b.String()
	}
	before := state()
	run("third sync")
	if after := state(); after != before {
		t.Errorf("a sync with nothing to do changed something")
	}
}
