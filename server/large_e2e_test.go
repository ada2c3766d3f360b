package server_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest"
)

// largeScript sends three 45 MB messages to alice with Python's smtplib (port 25 DATA, port 25
// BDAT, submission on 587 after STARTTLS and AUTH), reads each back with imaplib (BODY.PEEK[])
// and poplib (RETR) and checks that each ends with exactly the bytes sent and that IMAP and
// POP3 agree byte for byte. Then it sends one 55 MB message (552: over the 50 MB limit) and
// breaks off one transfer in the middle of DATA. It prints "ok" when every check held.
const largeScript = `
import smtplib, ssl, sys, imaplib, poplib, socket
host, p25, p587, p143, p110 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

def big(tag, sender, size):
    head = ("From: %s\r\nTo: alice@example.test\r\nSubject: big %s\r\nDate: Fri, 04 Dec 2026 18:00:00 +0000\r\n"
            "Message-ID: <%s@remote.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" % (sender, tag, tag)).encode()
    line = b"%s %%09d the quick brown fox jumps over the lazy dog, %%09d\r\n" % tag.encode()
    n = size // len(line % (0, 0)) + 1
    return head + b"".join(line % (i, n - i) for i in range(n))

sent = {}
m = big("data25", "x@remote.test", 45 << 20); sent["data25"] = m
s = smtplib.SMTP(host, p25, local_hostname="mta.remote.test"); s.ehlo()
assert s.sendmail("x@remote.test", ["alice@example.test"], m) == {}
s.quit()

m = big("bdat25", "x@remote.test", 45 << 20); sent["bdat25"] = m
s = smtplib.SMTP(host, p25, local_hostname="mta.remote.test"); s.ehlo()
assert s.has_extn("chunking")
assert s.mail("x@remote.test")[0] == 250 and s.rcpt("alice@example.test")[0] == 250
chunk = 8 << 20
for off in range(0, len(m), chunk):
    part = m[off:off + chunk]
    last = off + chunk >= len(m)
    s.send(b"BDAT %d%s\r\n" % (len(part), b" LAST" if last else b"") + part)
    code, msg = s.getreply()
    assert code == 250, (code, msg)
s.quit()

m = big("sub587", "alice@example.test", 45 << 20); sent["sub587"] = m
s = smtplib.SMTP(host, p587, local_hostname="laptop"); s.starttls(context=ctx); s.login("alice@example.test", "alice-password")
assert s.sendmail("alice@example.test", ["alice@example.test"], m) == {}
s.quit()

im = imaplib.IMAP4(host, p143); im.starttls(ssl_context=ctx); im.login("alice@example.test", "alice-password")
typ, data = im.select("INBOX"); assert typ == "OK" and int(data[0]) == 3, data
by_imap = {}
for i in (1, 2, 3):
    typ, data = im.fetch(str(i), "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK", typ
    body = data[0][1]
    size = int(data[0][0].split(b"RFC822.SIZE ")[1].split()[0])
    assert size == len(body), (size, len(body))
    tag = [t for t in sent if body.endswith(sent[t])]
    assert len(tag) == 1, "message %d matches none sent" % i
    by_imap[i] = (tag[0], body)
im.logout()
assert sorted(t for t, _ in by_imap.values()) == sorted(sent)

pp = poplib.POP3(host, p110); pp.stls(context=ctx); pp.user("alice@example.test"); pp.pass_("alice-password")
for i in (1, 2, 3):
    resp, lines, octets = pp.retr(i)
    got = b"\r\n".join(lines) + b"\r\n"
    assert got == by_imap[i][1], "POP3 message %d differs from IMAP's (%d vs %d bytes)" % (i, len(got), len(by_imap[i][1]))
pp.quit()

s = smtplib.SMTP(host, p25, local_hostname="mta.remote.test"); s.ehlo()
try:
    s.sendmail("x@remote.test", ["alice@example.test"], big("toobig", "x@remote.test", 55 << 20))
    raise SystemExit("55 MB accepted")
except smtplib.SMTPDataError as e:
    assert e.smtp_code == 552, e
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 552, e
s.quit()
print("ok")
`

// TestLargeMessageRoundTrip: 45 MB over port 25 (DATA and BDAT) and submission comes back byte
// for byte over IMAP and POP3 (Python's smtplib, imaplib, poplib), a 55 MB message is refused with
// 552, and the spool holds nothing afterwards, nor after a client that vanished mid-DATA.
func TestLargeMessageRoundTrip(t *testing.T) {
	python := mailtest.Python(t)
	opts := mailtest.Prepare(t, mailtest.Options{})
	mailtest.StartProcess(t, opts)
	port := func(p int) string { return strings.TrimPrefix(opts.Addr(p), opts.IP+":") }
	cmd := exec.Command(python, "-c", largeScript, opts.IP, port(25), port(587), port(143), port(110))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("ok")) {
		t.Fatalf("python: %v\n%s", err, out)
	}
	spool := filepath.Join(opts.Dir, "spool")
	if names := dirNames(t, spool); len(names) != 0 {
		t.Fatalf("spool holds %v after the transfers", names)
	}

	// A client that goes away in the middle of DATA leaves nothing behind.
	c := partialData(t, opts.Addr(25), 5<<20)
	mailtest.WaitFor(t, 30*time.Second, "the broken-off message in the spool", func() bool { return len(dirNames(t, spool)) == 1 })
	c.Close()
	mailtest.WaitFor(t, 30*time.Second, "the spool to be emptied after the disconnect", func() bool { return len(dirNames(t, spool)) == 0 })
}

// TestSpoolEmptyAfterKill: a transfer in progress when the server is killed (kill -9) leaves a
// spool file, which the restarted server removes; the message was never acknowledged, so nothing
// is lost.
func TestSpoolEmptyAfterKill(t *testing.T) {
	opts := mailtest.Prepare(t, mailtest.Options{})
	p := mailtest.StartProcess(t, opts)
	spool := filepath.Join(opts.Dir, "spool")
	c := partialData(t, opts.Addr(25), 2<<20)
	defer c.Close()
	mailtest.WaitFor(t, 30*time.Second, "the message in the spool", func() bool { return len(dirNames(t, spool)) == 1 })
	p.Kill()
	if names := dirNames(t, spool); len(names) != 1 {
		t.Fatalf("after kill -9 the spool holds %v, want the one interrupted file", names)
	}
	mailtest.StartProcess(t, opts)
	if names := dirNames(t, spool); len(names) != 0 {
		t.Fatalf("after the restart the spool still holds %v", names)
	}
}

// partialData opens an SMTP transaction to alice and sends n bytes of message data without the
// final dot, leaving the transfer open.
func partialData(t *testing.T, addr string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	read := func(want string) {
		t.Helper()
		var got []byte
		for !bytes.Contains(got, []byte("\n"+want)) && !bytes.HasPrefix(got, []byte(want)) {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %q: %v (got %q)", want, err, got)
			}
			got = append(got, buf[:k]...)
		}
	}
	read("220 ")
	for _, step := range []struct{ cmd, want string }{
		{"EHLO mta.remote.test", "250 "}, {"MAIL FROM:<x@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "}, {"DATA", "354 "},
	} {
		fmt.Fprintf(c, "%s\r\n", step.cmd)
		read(step.want)
	}
	line := []byte("From: x@remote.test\r\n" + strings.Repeat("y", 76) + "\r\n")
	for sent := 0; sent < n; sent += len(line) {
		if _, err := c.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
