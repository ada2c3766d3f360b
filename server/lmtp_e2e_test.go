package server_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mailstead/mailtest"
	"mailstead/server"
	"mailstead/store"
)

// lmtpClient delivers one message with Python's smtplib.LMTP over the unix socket and prints
// each reply code: the RCPTs', then one per accepted recipient after DATA (RFC 2033 §4.2).
const lmtpClient = `
import smtplib, sys
path, sender, rcpts = sys.argv[1], sys.argv[2], sys.argv[3:]
l = smtplib.LMTP(path)
code, _ = l.ehlo("mta.remote.test")
assert code == 250, code
assert l.mail(sender)[0] == 250
accepted = 0
for r in rcpts:
    code, msg = l.rcpt(r)
    print("rcpt", r, code, msg.decode().split()[0])
    accepted += code == 250
code, _ = l.docmd("DATA")
assert code == 354, code
l.send(b"From: <" + sender.encode() + b">\r\nSubject: handed over by lmtp\r\n\r\nOne copy each.\r\n.\r\n")
for i in range(accepted):
    code, msg = l.getreply()
    print("data", code, msg.decode().split()[0])
sys.stdout.flush()
`

// TestInteropLMTP: Python's smtplib.LMTP hands a message to two local recipients and one
// unknown over the data directory's socket: the unknown one is refused at RCPT with 550 5.1.1,
// and after DATA each accepted recipient gets its own 250. The server is killed with SIGKILL
// right after the replies; reopened, each mailbox holds the message exactly once.
func TestInteropLMTP(t *testing.T) {
	python := mailtest.Python(t)
	opts := mailtest.Prepare(t, mailtest.Options{
		Accounts: map[string]string{"alice@example.test": "alice-pw", "bob@example.test": "bob-pw"},
	})
	p := mailtest.StartProcess(t, opts)
	sock := filepath.Join(opts.Dir, server.LMTPSocket)
	out, err := exec.Command(python, "-c", lmtpClient, sock, "list@remote.test",
		"alice@example.test", "nobody@example.test", "bob@example.test").CombinedOutput()
	p.Kill()
	if err != nil {
		t.Fatalf("smtplib.LMTP: %v\n%s", err, out)
	}
	want := "rcpt alice@example.test 250 2.0.0\nrcpt nobody@example.test 550 5.1.1\nrcpt bob@example.test 250 2.0.0\n" +
		"data 250 2.0.0\ndata 250 2.0.0"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("LMTP replies:\n%s\nwant:\n%s", got, want)
	}

	st, err := store.Open(opts.Dir, store.Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer st.Close()
	if res, err := st.IntegrityCheck(context.Background()); err != nil || res != "ok" {
		t.Fatalf("integrity check: %q %v", res, err)
	}
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		box := mailtest.Mailbox(t, st, a, "INBOX")
		if len(box) != 1 || !bytes.Contains(box[0], []byte("Subject: handed over by lmtp")) {
			t.Fatalf("%s: %d messages after SIGKILL, want the LMTP message once", a, len(box))
		}
		if !bytes.Contains(box[0], []byte("with LMTP")) || !bytes.Contains(box[0], []byte("Delivered-To: "+a)) {
			t.Errorf("%s: trace headers:\n%s", a, box[0][:bytes.Index(box[0], []byte("Subject:"))])
		}
	}
}
