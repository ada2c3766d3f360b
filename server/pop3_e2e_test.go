package server_test

import (
	"bufio"
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest"
	"mailstead/pop3/pop3test"
)

// serverCAFile writes the certificate a TLS listener presents to a PEM file, so real clients can
// verify the server's self-signed certificate instead of turning verification off.
func serverCAFile(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path := filepath.Join(t.TempDir(), "server.pem")
	cert := c.ConnectionState().PeerCertificates[0]
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// popLine is a raw POP3 exchange.
func popLine(t *testing.T, r *bufio.Reader, c interface{ Write([]byte) (int, error) }, cmd, want string) string {
	t.Helper()
	if cmd != "" {
		c.Write([]byte(cmd + "\r\n"))
	}
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, want) {
		t.Fatalf("%s: got %q (%v), want %q", cmd, line, err, want)
	}
	return line
}

// TestPOP3AgainstStore: mail delivered over SMTP is listed, retrieved and deleted over POP3;
// UIDLs are stable across a restart; a deletion commits only at QUIT and IMAP-side expunges
// during a session give -ERR.
func TestPOP3AgainstStore(t *testing.T) {
	opts := mailtest.Prepare(t, mailtest.Options{})
	srv := mailtest.Run(t, opts)
	for _, body := range []string{"From: x@remote.test\r\nSubject: one\r\n\r\nfirst\r\n", "From: x@remote.test\r\nSubject: two\r\n\r\n.leading dot\r\nsecond\r\n"} {
		if err := send(t, opts.Addr(25), "x@remote.test", []string{"alice@example.test"}, []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	c, err := tls.Dial("tcp", opts.Addr(995), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	popLine(t, r, c, "", "+OK")
	popLine(t, r, c, "USER alice@example.test", "+OK")
	popLine(t, r, c, "PASS alice-password", "+OK")
	popLine(t, r, c, "STAT", "+OK 2 ")
	uidl := popLine(t, r, c, "UIDL 2", "+OK 2 ")
	popLine(t, r, c, "DELE 1", "+OK")
	c.Close() // dropped without QUIT: nothing is deleted
	stored := mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")
	if len(stored) != 2 {
		t.Fatalf("%d messages after a dropped session, want 2", len(stored))
	}

	srv.Stop()
	srv = mailtest.Run(t, opts)
	c2, err := tls.Dial("tcp", opts.Addr(995), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	r = bufio.NewReader(c2)
	popLine(t, r, c2, "", "+OK")
	popLine(t, r, c2, "USER alice@example.test", "+OK")
	popLine(t, r, c2, "PASS alice-password", "+OK")
	if again := popLine(t, r, c2, "UIDL 2", "+OK 2 "); again != uidl {
		t.Fatalf("UIDL changed across restart: %q then %q", uidl, again)
	}
	// An IMAP client (here: the store, as IMAP does) expunges message 2 meanwhile.
	ctx := t.Context()
	acct := srv.AccountID("alice@example.test")
	inbox, _ := srv.Store().MailboxByName(ctx, acct, "INBOX")
	msgs, _ := srv.Store().Messages(ctx, inbox.ID)
	if err := srv.Store().DeleteMessages(ctx, inbox.ID, []int64{msgs[1].ID}); err != nil {
		t.Fatal(err)
	}
	popLine(t, r, c2, "RETR 2", "-ERR")
	popLine(t, r, c2, "DELE 1", "+OK")
	popLine(t, r, c2, "QUIT", "+OK")
	mailtest.WaitFor(t, 5*time.Second, "the deletion to commit", func() bool {
		return len(mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")) == 0
	})
}

// TestInteropPOP3Clients runs Python's poplib and fetchmail against the whole server, over 995
// and over 110 with STLS, verifying the server's certificate.
func TestInteropPOP3Clients(t *testing.T) {
	mailtest.Python(t)
	mailtest.RequireTool(t, "fetchmail")
	srv := mailtest.Start(t, mailtest.Options{})
	opts := srv.Opts
	var want [][]byte
	for _, body := range []string{"From: x@remote.test\r\nSubject: one\r\n\r\nfirst\r\n", "From: x@remote.test\r\nSubject: two\r\n\r\n.leading dot\r\n..two\r\nsecond\r\n"} {
		if err := send(t, opts.Addr(25), "x@remote.test", []string{"alice@example.test"}, []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	want = mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")
	ca := serverCAFile(t, opts.Addr(995))
	implicit := pop3test.Target{Addr: opts.Addr(995), ImplicitTLS: true, CAFile: ca, ServerName: opts.Hostname,
		User: "alice@example.test", Password: "alice-password"}
	stls := implicit
	stls.Addr, stls.ImplicitTLS = opts.Addr(110), false

	pop3test.CheckPoplib(t, stls, want, nil, false)
	pop3test.CheckFetchmail(t, implicit, want, true, t.TempDir())
	pop3test.CheckFetchmail(t, stls, want, true, t.TempDir())
	pop3test.CheckFetchmail(t, implicit, want, false, t.TempDir()) // delete mode
	mailtest.WaitFor(t, 5*time.Second, "fetchmail's deletions", func() bool {
		return len(mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")) == 0
	})
}
