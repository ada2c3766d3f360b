package pop3_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest/testkit"
	"mailstead/pop3"
	"mailstead/pop3/pop3test"
)

const (
	alice    = "alice@example.com"
	alicePw  = "correct horse battery staple"
	bob      = "bob@example.com"
	bobPw    = "hunter2-but-longer"
	greeting = "+OK POP3 server ready"
)

// harness is one server with a plain listener (STLS) and an implicit-TLS
// listener on 127.0.0.1, over an in-memory backend.
type harness struct {
	t        *testing.T
	srv      *pop3.Server
	mem      *pop3test.Memory
	tls      *pop3test.TLS
	plain    string
	implicit string
	logs     *testkit.LogBuffer
	served   chan error
}

func newHarness(t *testing.T, adjust func(*pop3.Config)) *harness {
	t.Helper()
	h := &harness{t: t, mem: pop3test.NewMemory(), tls: pop3test.NewTLS(t), logs: &testkit.LogBuffer{}, served: make(chan error, 2)}
	h.mem.AddUser(alice, alicePw)
	h.mem.AddUser(bob, bobPw)
	cfg := pop3.Config{
		Backend:   h.mem,
		TLSConfig: h.tls.Server,
		Logger:    slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := pop3.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	lp := listen(t)
	li := listen(t)
	h.plain, h.implicit = lp.Addr().String(), li.Addr().String()
	go func() { h.served <- srv.Serve(lp) }()
	go func() { h.served <- srv.ServeTLS(li) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if strings.Contains(h.logs.String(), "panic") && !t.Failed() && !strings.Contains(t.Name(), "Panic") {
			t.Errorf("server logged a panic:\n%s", h.logs.String())
		}
	})
	return h
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// client is a raw POP3 client that shows every byte the server sends.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

// dialPlain connects to the plain port and reads the greeting.
func (h *harness) dialPlain() *client {
	c := dialRaw(h.t, h.plain)
	c.expect(greeting)
	return c
}

// dialTLS connects to the implicit-TLS port and reads the greeting.
func (h *harness) dialTLS() *client {
	h.t.Helper()
	raw, err := tls.Dial("tcp", h.implicit, h.tls.Client)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	c := &client{t: h.t, conn: raw, r: bufio.NewReader(raw)}
	c.expect(greeting)
	return c
}

// login opens a TLS session as user.
func (h *harness) login(user, pw string) *client {
	h.t.Helper()
	c := h.dialTLS()
	c.cmd("USER "+user, "+OK send PASS")
	c.cmdPrefix("PASS "+pw, "+OK maildrop has ")
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading reply: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

func (c *client) expectPrefix(prefix string) string {
	c.t.Helper()
	got := c.line()
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("got %q, want prefix %q", got, prefix)
	}
	return got
}

// cmd sends line and expects exactly want.
func (c *client) cmd(line, want string) {
	c.t.Helper()
	c.send(line)
	c.expect(want)
}

// cmdPrefix sends line and expects a reply starting with prefix.
func (c *client) cmdPrefix(line, prefix string) string {
	c.t.Helper()
	c.send(line)
	return c.expectPrefix(prefix)
}

// multi reads the lines of a multi-line response up to the final ".", as
// sent (still dot-stuffed).
func (c *client) multi() []string {
	c.t.Helper()
	var lines []string
	for {
		l := c.line()
		if l == "." {
			return lines
		}
		lines = append(lines, l)
	}
}

// multiRaw reads a multi-line response body as raw bytes, including the
// terminating ".\r\n".
func (c *client) multiRaw() []byte {
	c.t.Helper()
	var buf bytes.Buffer
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading multi-line reply: %v (so far %q)", err, buf.String())
		}
		buf.WriteString(l)
		if l == ".\r\n" {
			return buf.Bytes()
		}
	}
}

// expectClosed checks that the server closes the connection, with no more
// output.
func (c *client) expectClosed() {
	c.t.Helper()
	rest, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, io.EOF) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("server did not close the connection (got %q)", rest)
		}
	}
	if len(rest) > 0 {
		c.t.Fatalf("unexpected output before close: %q", rest)
	}
}

// startTLS upgrades c after a successful STLS reply.
func (c *client) startTLS(cfg *tls.Config) {
	c.t.Helper()
	if c.r.Buffered() > 0 {
		c.t.Fatalf("server sent data after STLS reply")
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake after STLS: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// stuff is the dot-stuffed multi-line form of a CRLF message (RFC 1939 §3).
func stuff(msg string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(msg, "\r\n") {
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(l)
	}
	return b.String() + ".\r\n"
}

// waitBriefly yields while polling for something the server does
// asynchronously (noticing a dropped connection).
func waitBriefly() { time.Sleep(5 * time.Millisecond) }

func manyErrors(c *pop3.Config) { c.MaxErrors = 1000 }

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
