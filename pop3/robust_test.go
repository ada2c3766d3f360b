package pop3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest/testkit"
	"mailstead/pop3"
	"mailstead/pop3/pop3test"
)

// TestOverlongLine: commands are at most 255 octets with CRLF (RFC 2449
// §4); a longer one gets -ERR and the session goes on.
func TestOverlongLine(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1)
	c := h.login(alice, alicePw)
	c.cmd("NOOP "+strings.Repeat("x", 255-len("NOOP \r\n")), "+OK") // exactly 255 octets
	c.cmd("NOOP "+strings.Repeat("x", 256-len("NOOP \r\n")), "-ERR line too long (RFC 2449: at most 255 octets)")
	c.cmd("LIST "+strings.Repeat("1", 10000), "-ERR line too long (RFC 2449: at most 255 octets)")
	c.cmd("STAT", fmt.Sprintf("+OK 1 %d", len(msg1)))

	// A client that never ends its line is cut off after a bounded amount.
	flood := h.dialTLS()
	go flood.conn.Write(bytes.Repeat([]byte("A"), 1<<20))
	flood.expectClosed()
}

// TestBinaryGarbage: random bytes get -ERR replies until the error limit
// closes the session; the server keeps serving others.
func TestBinaryGarbage(t *testing.T) {
	h := newHarness(t, func(c *pop3.Config) { c.MaxErrors = 5 })
	c := h.dialPlain()
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 200)
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
		if garbage[i] == '\n' {
			garbage[i] = 0
		}
	}
	for i := 0; i < 4; i++ {
		if _, err := c.conn.Write(append(bytes.Clone(garbage[i*40:(i+1)*40]), "\r\n"...)); err != nil {
			t.Fatal(err)
		}
		if l := c.expectPrefix("-ERR "); strings.Contains(l, "too many") {
			t.Fatalf("garbage line %d: %q", i, l)
		}
	}
	c.send("\x00\xff\xfe USER \x00")
	c.expect("-ERR too many errors, closing connection")
	c.expectClosed()

	h.dialTLS().cmd("CAPA x", "+OK capability list follows") // the server is fine
}

// TestPipelining: many commands in one write get their replies in order
// (RFC 2449 §6.6).
func TestPipelining(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1, msg2)
	c := h.dialTLS()
	c.send(strings.Join([]string{"USER " + alice, "PASS " + alicePw, "STAT", "RETR 2", "DELE 1", "LIST", "QUIT"}, "\r\n"))
	c.expect("+OK send PASS")
	c.expectPrefix("+OK maildrop has 2 messages")
	c.expect(fmt.Sprintf("+OK 2 %d", len(msg1)+len(msg2)))
	c.expect(fmt.Sprintf("+OK %d octets", len(msg2)))
	if got := string(c.multiRaw()); got != stuff(msg2) {
		t.Fatalf("pipelined RETR sent %q", got)
	}
	c.expect("+OK message 1 deleted")
	c.expect(fmt.Sprintf("+OK 1 messages (%d octets)", len(msg2)))
	c.multi()
	c.expect("+OK bye, 1 messages left")
	c.expectClosed()
}

// TestBareLineEndings: a stored message with bare LF (which the store should
// never hold) still goes out with CRLF, with the octet count as listed.
func TestBareLineEndings(t *testing.T) {
	h := newHarness(t, nil)
	raw := "Subject: lf\n\n.dot\nend"
	h.deliverStrings(alice, raw)
	c := h.login(alice, alicePw)
	size := pop3test.CRLFSize([]byte(raw))
	c.cmd("LIST 1", fmt.Sprintf("+OK 1 %d", size))
	c.cmd("RETR 1", fmt.Sprintf("+OK %d octets", size))
	if got, want := string(c.multiRaw()), "Subject: lf\r\n\r\n..dot\r\nend\r\n.\r\n"; got != want {
		t.Fatalf("RETR sent %q, want %q", got, want)
	}
}

// TestConnectionLimits: over the per-IP limit a client gets -ERR [SYS/TEMP]
// and is closed, on both ports.
func TestConnectionLimits(t *testing.T) {
	h := newHarness(t, func(c *pop3.Config) { c.MaxConnectionsPerIP = 2 })
	a := h.dialPlain()
	b := h.dialTLS()
	over := dialRaw(t, h.plain)
	over.expect("-ERR [SYS/TEMP] too many connections, try again later")
	over.expectClosed()
	overTLS := h.dialTLSRaw()
	overTLS.expect("-ERR [SYS/TEMP] too many connections, try again later")
	overTLS.expectClosed()

	a.cmd("QUIT", "+OK bye")
	a.expectClosed()
	// The slot frees once the server has finished the session.
	for i := 0; ; i++ {
		c := dialRaw(t, h.plain)
		if l := c.line(); l == greeting {
			break
		} else if i == 1000 {
			t.Fatalf("never got a slot back: %q", l)
		}
		waitBriefly()
	}
	b.cmd("NOOP", "-ERR NOOP is not valid before login")

	total := newHarness(t, func(c *pop3.Config) { c.MaxConnections = 1 })
	total.dialPlain()
	over = dialRaw(t, total.plain)
	over.expect("-ERR [SYS/TEMP] too many connections, try again later")
}

func (h *harness) dialTLSRaw() *client {
	h.t.Helper()
	c := dialRaw(h.t, h.implicit)
	c.startTLS(h.tls.Client)
	return c
}

// TestIdleTimeout: an idle session is closed without a reply and without
// UPDATE (RFC 1939 §3).
func TestIdleTimeout(t *testing.T) {
	h := newHarness(t, func(c *pop3.Config) { c.IdleTimeout = 50 * time.Millisecond })
	h.deliverStrings(alice, msg1)
	c := h.login(alice, alicePw)
	c.cmd("DELE 1", "+OK message 1 deleted")
	c.expectClosed()
	if n := len(h.mem.Stored(alice)); n != 1 {
		t.Fatalf("idle timeout deleted messages: %d left", n)
	}
}

// TestShutdown: idle sessions are told to come back later, marked messages
// stay, Serve returns ErrServerClosed and new connections are refused.
func TestShutdown(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1)
	c := h.login(alice, alicePw)
	c.cmd("DELE 1", "+OK message 1 deleted")
	idle := h.dialPlain()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.expect("-ERR [SYS/TEMP] server shutting down, try again later")
	c.expectClosed()
	idle.expect("-ERR [SYS/TEMP] server shutting down, try again later")
	idle.expectClosed()
	for range 2 {
		if err := <-h.served; !errors.Is(err, pop3.ErrServerClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	}
	if n := len(h.mem.Stored(alice)); n != 1 {
		t.Fatalf("shutdown deleted messages: %d left", n)
	}
	if _, err := net.Dial("tcp", h.plain); err == nil {
		t.Fatal("listener still accepting after Shutdown")
	}
	l := listen(t)
	if err := h.srv.Serve(l); !errors.Is(err, pop3.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown returned %v", err)
	}
}

// TestShutdownDeadline: a session that does not finish in time is cut off
// when the context ends.
func TestShutdownDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	h := newHarness(t, nil)
	h.mem.AddUser("slow@example.com", "pw")
	entered := make(chan struct{}, 1)
	srv, err := pop3.NewServer(pop3.Config{Backend: blockingBackend{h.mem, block, entered}, TLSConfig: h.tls.Server})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	go srv.ServeTLS(l)
	h.implicit = l.Addr().String()
	c := h.dialTLS()
	c.send("USER slow@example.com")
	c.expect("+OK send PASS")
	c.send("PASS pw") // Login blocks until its context ends
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
}

type blockingBackend struct {
	*pop3test.Memory
	block   chan struct{}
	entered chan struct{}
}

func (b blockingBackend) Login(ctx context.Context, user, pw string, remote net.Addr) (pop3.Maildrop, error) {
	b.entered <- struct{}{}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.block:
	}
	return b.Memory.Login(ctx, user, pw, remote)
}

// panicBackend's maildrop panics when listed.
type panicBackend struct{ *pop3test.Memory }

func (b panicBackend) Login(ctx context.Context, user, pw string, remote net.Addr) (pop3.Maildrop, error) {
	md, err := b.Memory.Login(ctx, user, pw, remote)
	if err != nil {
		return nil, err
	}
	return panicDrop{md}, nil
}

type panicDrop struct{ pop3.Maildrop }

func (panicDrop) Messages(context.Context) ([]pop3.Message, error) { panic("boom") }

func (d panicDrop) Close() error {
	d.Maildrop.Close()
	panic("boom in Close")
}

// TestPanicRecovery: a panic ends the session with a log line, releases the
// lock and leaves the server running.
func TestPanicRecovery(t *testing.T) {
	h := newHarness(t, nil)
	var backend pop3.Backend = panicBackend{h.mem}
	logs := &testkit.LogBuffer{}
	srv, err := pop3.NewServer(pop3.Config{Backend: backend, TLSConfig: h.tls.Server, Logger: newTextLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	go srv.ServeTLS(l)
	defer srv.Shutdown(context.Background())
	h.implicit = l.Addr().String()
	for range 2 { // the second login proves the lock was released
		c := h.dialTLS()
		c.cmd("USER "+alice, "+OK send PASS")
		c.send("PASS " + alicePw)
		c.expectClosed()
	}
	// Two sessions, each with a panic in Messages and another in Close.
	if n := strings.Count(logs.String(), `msg="pop3 session panic"`); n != 4 || !strings.Contains(logs.String(), "boom in Close") {
		t.Fatalf("no panic log line:\n%s", logs.String())
	}
}

// TestBackendErrors: store failures become [SYS/TEMP], never a crash.
func TestBackendErrors(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1)
	c := h.login(alice, alicePw)
	c.cmd("DELE 1", "+OK message 1 deleted")
	h.mem.DeleteErr = errors.New("disk on fire")
	c.cmd("QUIT", "-ERR [SYS/TEMP] some deleted messages not removed")
	c.expectClosed()
	if n := len(h.mem.Stored(alice)); n != 1 {
		t.Fatalf("store holds %d messages", n)
	}

	h.mem.LoginErr = errors.New("database locked")
	c = h.dialTLS()
	c.cmd("USER "+alice, "+OK send PASS")
	c.cmd("PASS "+alicePw, "-ERR [SYS/TEMP] cannot open maildrop, try again later")
	if strings.Contains(h.logs.String(), `msg="auth failed"`) {
		t.Fatal("a backend failure was logged as a failed login")
	}
	h.mem.LoginErr = pop3.ErrInUse
	c.cmd("USER "+alice, "+OK send PASS")
	c.cmd("PASS "+alicePw, "-ERR [IN-USE] maildrop is in use by another session")
}

// TestNewServer checks the configuration errors.
func TestNewServer(t *testing.T) {
	if _, err := pop3.NewServer(pop3.Config{}); err == nil {
		t.Fatal("NewServer without Backend succeeded")
	}
	srv, err := pop3.NewServer(pop3.Config{Backend: pop3test.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	defer l.Close()
	if err := srv.ServeTLS(l); err == nil || errors.Is(err, pop3.ErrServerClosed) {
		t.Fatalf("ServeTLS without TLSConfig = %v", err)
	}
	srv.Shutdown(context.Background())
}
