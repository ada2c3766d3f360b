package smtp

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"mailstead/mailtest/storetest"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"mailstead/mailtest/testkit"
	"mailstead/store"
)

type subEnv struct {
	st       *store.Store
	addr     string // 587-style: STARTTLS
	tlsAddr  string // 465-style: implicit TLS
	logs     *testkit.LogBuffer
	mu       sync.Mutex
	remotes  []int // Delivered's remote counts
	aliceID  int64
	bobID    int64
	signings int
}

// startSubmission runs a submission server on a store with alice and bob at example.test, alice
// owning the alias team@example.test.
func startSubmission(t *testing.T) *subEnv {
	t.Helper()
	st := storetest.Open(t, "example.test")
	ctx := context.Background()
	alice, err := st.AddAccount(ctx, "alice@example.test", "alice-pw", false)
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := st.AddAccount(ctx, "bob@example.test", "bob-pw", false)
	if err := st.AddAlias(ctx, "team@example.test", []string{"alice@example.test"}); err != nil {
		t.Fatal(err)
	}
	e := &subEnv{st: st, logs: &testkit.LogBuffer{}, aliceID: alice.ID, bobID: bob.ID}
	srv := NewSubmission(Config{
		Store: st, Hostname: func() string { return "mx.example.test" }, TLSConfig: testkit.SelfSignedTLS(t, "mx.example.test"),
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}})),
		Delivered: func(_ *Delivered, remote int) {
			e.mu.Lock()
			e.remotes = append(e.remotes, remote)
			e.mu.Unlock()
		},
	}, SubmissionConfig{
		Sign: func(ctx context.Context, _ []byte, msg io.Reader) ([]byte, error) {
			io.Copy(io.Discard, msg)
			e.mu.Lock()
			e.signings++
			e.mu.Unlock()
			return []byte("DKIM-Signature: v=1; test\r\n"), nil
		},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	go srv.ServeTLS(lt)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	e.addr, e.tlsAddr = l.Addr().String(), lt.Addr().String()
	return e
}

// dialSubmission connects with STARTTLS (or implicit TLS) and logs in when user is set.
func (e *subEnv) dial(t *testing.T, implicit bool, mech, user, pass string) (*gosmtp.Client, error) {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true}
	var c *gosmtp.Client
	var err error
	if implicit {
		c, err = gosmtp.DialTLS(e.tlsAddr, cfg)
	} else {
		c, err = gosmtp.DialStartTLS(e.addr, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if user == "" {
		return c, nil
	}
	var sc sasl.Client
	if mech == sasl.Login {
		sc = sasl.NewLoginClient(user, pass)
	} else {
		sc = sasl.NewPlainClient("", user, pass)
	}
	return c, c.Auth(sc)
}

func smtpCode(err error) int {
	if se, ok := err.(*gosmtp.SMTPError); ok {
		return se.Code
	}
	return 0
}

// Before STARTTLS, AUTH is neither offered nor accepted, and MAIL needs AUTH: 530 5.7.0.
func TestSubmissionNoAuthBeforeTLS(t *testing.T) {
	e := startSubmission(t)
	c := dialMX(t, e.addr)
	c.c.Write([]byte("EHLO client.test\r\n"))
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var caps []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		caps = append(caps, strings.TrimSpace(line))
		if line[3] == ' ' {
			break
		}
	}
	for _, l := range caps {
		if strings.Contains(l, "AUTH") {
			t.Fatalf("AUTH offered before TLS: %v", caps)
		}
	}
	c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==", "523 5.7.10")
	c.cmd("MAIL FROM:<alice@example.test>", "530 5.7.0")
	c.cmd("RCPT TO:<bob@example.test>", "5")
}

// Over implicit TLS, without logging in, nothing is relayed.
func TestSubmissionUnauthenticatedRelayRefused(t *testing.T) {
	e := startSubmission(t)
	for _, implicit := range []bool{false, true} {
		c, _ := e.dial(t, implicit, "", "", "")
		if err := c.Mail("alice@example.test", nil); smtpCode(err) != 530 {
			t.Fatalf("MAIL without AUTH (implicit TLS %v): %v, want 530", implicit, err)
		}
	}
}

// A user logs in with PLAIN or LOGIN and sends to a local and a remote recipient: the local copy
// and the queue entry are committed before the 250, with Date, Message-ID and DKIM added.
func TestSubmissionDeliversAndQueues(t *testing.T) {
	e := startSubmission(t)
	for i, mech := range []string{sasl.Plain, sasl.Login} {
		c, err := e.dial(t, i == 1, mech, "alice@example.test", "alice-pw")
		if err != nil {
			t.Fatalf("AUTH %s: %v", mech, err)
		}
		msg := "From: Alice <alice@example.test>\r\nTo: bob@example.test, x@remote.test\r\nSubject: hi\r\n\r\nHello.\r\n"
		if err := c.SendMail("alice@example.test", []string{"bob@example.test", "x@remote.test"}, strings.NewReader(msg)); err != nil {
			t.Fatalf("send (%s): %v", mech, err)
		}
	}
	ctx := context.Background()
	mb, _ := e.st.MailboxByName(ctx, e.bobID, "INBOX")
	msgs, _ := e.st.Messages(ctx, mb.ID)
	if len(msgs) != 2 {
		t.Fatalf("bob has %d messages, want 2", len(msgs))
	}
	data, _ := e.st.MessageData(ctx, msgs[0].ID)
	for _, want := range []string{"Return-Path: <alice@example.test>", "Received: from localhost ([127.0.0.1])", "with ESMTPSA",
		"DKIM-Signature: v=1; test", "\r\nDate: ", "\r\nMessage-ID: <", "Subject: hi"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("stored message lacks %q:\n%s", want, data)
		}
	}
	q, err := e.st.QueueList(ctx)
	if err != nil || len(q) != 2 || q[0].Rcpt != "x@remote.test" || q[0].MailFrom != "alice@example.test" {
		t.Fatalf("queue = %+v, %v", q, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.remotes) != 2 || e.remotes[0] != 1 || e.signings != 2 {
		t.Fatalf("Delivered calls %v, signings %d", e.remotes, e.signings)
	}
}

// Envelope and From: must be the user's own address or an alias they own: else 553 5.7.1.
func TestSubmissionSenderOwnership(t *testing.T) {
	e := startSubmission(t)
	c, err := e.dial(t, false, sasl.Plain, "alice@example.test", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("bob@example.test", nil); smtpCode(err) != 553 {
		t.Fatalf("MAIL FROM someone else's address: %v, want 553", err)
	}
	c.Reset()
	if err := c.Mail("", nil); smtpCode(err) != 553 {
		t.Fatalf("MAIL FROM:<> by a user: %v, want 553", err)
	}
	c.Reset()
	send := func(from, header string) error {
		c.Reset()
		if err := c.Mail(from, nil); err != nil {
			return err
		}
		if err := c.Rcpt("x@remote.test", nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		w.Write([]byte("From: " + header + "\r\nSubject: s\r\n\r\nbody\r\n"))
		return w.Close()
	}
	if err := send("Team@Example.test", "Team <team@example.test>"); err != nil {
		t.Fatalf("sending as an owned alias: %v", err)
	}
	if err := send("alice@example.test", "Bob <bob@example.test>"); smtpCode(err) != 553 {
		t.Fatalf("From: someone else's address: %v, want 553", err)
	}
	if err := send("alice@example.test", "alice@example.test, bob@example.test"); smtpCode(err) != 553 {
		t.Fatalf("From: with a second, foreign address: %v, want 553", err)
	}
	q, _ := e.st.QueueList(context.Background())
	if len(q) != 1 {
		t.Fatalf("queue has %d entries, want only the alias message", len(q))
	}
}

// A wrong password is refused with 535, slowed, and logged in the fail2ban line.
func TestSubmissionAuthFailure(t *testing.T) {
	e := startSubmission(t)
	for _, mech := range []string{sasl.Plain, sasl.Login} {
		if _, err := e.dial(t, false, mech, "Alice@example.test", "wrong"); smtpCode(err) != 535 {
			t.Fatalf("AUTH %s with a wrong password: %v, want 535", mech, err)
		}
	}
	want := `level=WARN msg="auth failed" proto=smtp ip=127.0.0.1 user=alice@example.test`
	if n := strings.Count(e.logs.String(), want); n != 2 {
		t.Fatalf("log has %d lines %q:\n%s", n, want, e.logs.String())
	}
}

func TestLoginMechanism(t *testing.T) {
	var user, pass string
	l := &loginServer{check: func(u, p string) error { user, pass = u, p; return nil }}
	if ch, done, _ := l.Next(nil); string(ch) != "Username:" || done {
		t.Fatalf("first challenge %q", ch)
	}
	if ch, done, _ := l.Next([]byte("alice")); string(ch) != "Password:" || done {
		t.Fatalf("second challenge %q", ch)
	}
	if _, done, err := l.Next([]byte("pw")); !done || err != nil || user != "alice" || pass != "pw" {
		t.Fatalf("done=%v err=%v user=%q pass=%q", done, err, user, pass)
	}
	// The user name as initial response (AUTH LOGIN dXNlcg==).
	l = &loginServer{check: func(u, p string) error { user, pass = u, p; return nil }}
	if ch, _, _ := l.Next([]byte("bob")); string(ch) != "Password:" {
		t.Fatalf("challenge after initial response %q", ch)
	}
	l.Next([]byte("x"))
	if user != "bob" || pass != "x" {
		t.Fatalf("user=%q pass=%q", user, pass)
	}
}
