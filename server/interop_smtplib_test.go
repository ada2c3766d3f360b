package server_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"mailstead/mailtest"
)

// TestInteropPythonSmtplib drives the MX receiver with Python's smtplib: plain and STARTTLS,
// several recipients, an alias, a plus-address, a dot-stuffed line, 8-bit and SMTPUTF8, BDAT-less
// large message, and the rejections a relay abuser would try.
func TestInteropPythonSmtplib(t *testing.T) {
	python := mailtest.Python(t)
	srv := receiveFixture(t)
	script := `
import smtplib, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
msg = b"Subject: py\r\nFrom: py@remote.test\r\n\r\nline\r\n.dot line\r\n"
s = smtplib.SMTP(host, port, local_hostname="py.remote.test")
code, caps = s.ehlo()
for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "starttls"):
    assert s.has_extn(ext), ext
assert not s.has_extn("auth"), "AUTH offered on port 25"
s.starttls(context=ctx); s.ehlo()
refused = s.sendmail("py@remote.test", ["alice@example.test", "team@example.test", "bob+tag@example.test"], msg)
assert refused == {}, refused
s.sendmail("py@remote.test", ["carol@bücher.test"], "From: x@remote.test\r\nSubject: ü\r\n\r\nGrüße\r\n".encode(), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
for rcpt, code in (("x@elsewhere.test", 550), ("nobody@example.test", 550), ("x%elsewhere.test@example.test", 550)):
    try:
        s.sendmail("py@remote.test", [rcpt], msg); raise SystemExit("accepted " + rcpt)
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients[rcpt][0] == code, e.recipients
s.quit()
print("ok")
`
	cmd := exec.Command(python, "-c", script, srv.Opts.IP, strings.TrimPrefix(srv.Opts.Addr(25), srv.Opts.IP+":"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("ok")) {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	want := []byte("Subject: py\r\nFrom: py@remote.test\r\n\r\nline\r\n.dot line\r\n")
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		box := mailtest.Mailbox(t, srv.Store(), a, "INBOX")
		if len(box) != 1 {
			t.Fatalf("%s: %d messages, want 1", a, len(box))
		}
		if _, orig := stripAdded(t, box[0]); !bytes.Equal(orig, want) {
			t.Fatalf("%s: stored %q, want %q", a, orig, want)
		}
	}
	if box := mailtest.Mailbox(t, srv.Store(), "carol@bücher.test", "INBOX"); len(box) != 1 || !bytes.Contains(box[0], []byte("Grüße")) {
		t.Fatalf("SMTPUTF8 message not stored intact")
	}
}
