package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailstead/mailtest/testkit"
	"mailstead/store"
)

const (
	alice   = "alice@example.test"
	alicePW = "alice-secret"
	bob     = "bob@example.test"
	bobPW   = "bob-secret"
)

// testEnv is one store and one IMAP server listening on loopback, cleartext (143-style) and
// implicit TLS (993-style).
type testEnv struct {
	t        *testing.T
	st       *store.Store
	srv      *Server
	plain    string // address of the STARTTLS listener
	implicit string // address of the implicit-TLS listener
	logs     *testkit.LogBuffer
	aliceID  int64
}

func newEnv(t testing.TB, mutate func(*Config)) *testEnv {
	return newEnvStore(t, store.Options{Describe: DescribeAt}, mutate)
}

func newEnvStore(t testing.TB, opts store.Options, mutate func(*Config)) *testEnv {
	tt, _ := t.(*testing.T)
	st, err := store.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	a, err := st.AddAccount(ctx, alice, alicePW, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddAccount(ctx, bob, bobPW, false); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	cfg := Config{
		Store:     st,
		TLSConfig: testkit.SelfSignedTLS(t, "mail.example.test"),
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{t: tt, st: st, srv: srv, logs: logs, aliceID: a.ID}
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env.plain, env.implicit = ln1.Addr().String(), ln2.Addr().String()
	go srv.Serve(ln1)
	go srv.ServeTLS(ln2)
	t.Cleanup(func() { srv.Close() })
	return env
}

func clientTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }

// login opens an implicit-TLS session and logs in.
func (e *testEnv) login(t testing.TB, user, pw string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(e.implicit, &imapclient.Options{TLSConfig: clientTLS(), UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func (e *testEnv) mailboxID(t testing.TB, name string) int64 {
	t.Helper()
	mb, err := e.st.MailboxByName(context.Background(), e.aliceID, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}

// deliver puts a message into alice's INBOX the way the MX receiver does.
func (e *testEnv) deliver(t testing.TB, subject string) {
	t.Helper()
	msg := fmt.Sprintf("From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: %s\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <%d@example.test>\r\n\r\nHello %s\r\n", subject, time.Now().UnixNano(), subject)
	if _, err := e.st.Deliver(context.Background(), &store.Delivery{MailFrom: bob, Data: []byte(msg),
		Local: []store.LocalRecipient{{AccountID: e.aliceID}}}); err != nil {
		t.Fatal(err)
	}
}

func testMessage(subject, body string) []byte {
	return []byte("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: " + subject +
		"\r\nDate: Tue, 03 Jan 2006 10:00:00 +0000\r\nMessage-ID: <" + subject + "@example.test>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n")
}

// raw is a line-oriented cleartext or TLS connection for malformed input.
type raw struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, conn: c, r: bufio.NewReader(c)}
	r.expectPrefix("* OK")
	return r
}

func (r *raw) send(s string) {
	r.t.Helper()
	r.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatalf("send %q: %v", s, err)
	}
}

func (r *raw) line() string {
	r.t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (r *raw) expectPrefix(p string) string {
	r.t.Helper()
	l := r.line()
	if !strings.HasPrefix(l, p) {
		r.t.Fatalf("got %q, want prefix %q", l, p)
	}
	return l
}

// untilTagged reads until the tagged reply of tag and returns every line read.
func (r *raw) untilTagged(tag string) []string {
	r.t.Helper()
	var lines []string
	for {
		l := r.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			return lines
		}
	}
}

func (r *raw) startTLS() {
	r.t.Helper()
	tc := tls.Client(r.conn, clientTLS())
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake: %v", err)
	}
	r.conn = tc
	r.r = bufio.NewReader(tc)
}

func dialPlain(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func storeEvent(uid uint32) store.Event {
	return store.Event{Kind: store.MessagesExpunged, UIDs: []uint32{uid}, ModSeq: 1 << 40}
}

type storeMeta = store.MessageMeta
