package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A connection over the per-client limit on the implicit-TLS port completes the handshake and
// reads BYE [UNAVAILABLE] inside TLS (a cleartext BYE reads as a TLS failure, and clients retry
// at once); the refusal is logged once; a closed connection frees its slot.
func TestOverLimitRefusedInsideTLS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	first := e.login(t, alice, alicePW, nil)
	e.login(t, alice, alicePW, nil)
	for range 3 {
		c, err := tls.Dial("tcp", e.implicit, clientTLS())
		if err != nil {
			t.Fatalf("handshake over the limit: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(line, "* BYE [UNAVAILABLE]") {
			t.Fatalf("over the limit: %q %v", line, err)
		}
	}
	if n := strings.Count(e.logs.String(), "connection refused"); n != 1 {
		t.Errorf("%d refusal lines, want 1:\n%s", n, e.logs.String())
	}
	first.Logout().Wait()
	first.Close()
	for e.srv.openFrom("127.0.0.1") > 1 {
		time.Sleep(5 * time.Millisecond) // the server sees the close when it reads EOF
	}
	e.login(t, alice, alicePW, nil)
}

// A client that connects to the implicit-TLS port and never starts the handshake is closed after
// HandshakeTimeout, and does not keep its slot.
func TestSilentTLSClientIsClosed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	c, err := net.Dial("tcp", e.implicit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("silent client: %v, want the server to close", err)
	}
	for e.srv.openFrom("127.0.0.1") > 0 {
		time.Sleep(5 * time.Millisecond)
	}
}

// Shutdown ends within its context whatever clients do: here ten clients that never finish the
// TLS handshake (their greeting write blocks, so a BYE to them would too). Sessions that never
// logged in are closed without a BYE.
func TestShutdownWithSilentClients(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HandshakeTimeout = time.Hour })
	var conns []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", e.implicit)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for e.srv.sessionCount() < 10 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v, want every session ended within its context", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Shutdown did not return after its context ended")
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Fatal("a silent client is still connected after Shutdown")
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
