package smtp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest/testkit"
	"mailstead/store"
)

// startBoth runs one MX server on a plain (STARTTLS) and an implicit-TLS listener.
func startBoth(t *testing.T, lim Limits) (plain, implicit string, st *store.Store, logs *testkit.LogBuffer) {
	t.Helper()
	st = mxStore(t)
	logs = &testkit.LogBuffer{}
	srv := NewMX(Config{Store: st, Hostname: func() string { return "mx.example.test" }, Limits: lim,
		TLSConfig: testkit.SelfSignedTLS(t, "mx.example.test"), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	lp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lp)
	go srv.ServeTLS(lt)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return lp.Addr().String(), lt.Addr().String(), st, logs
}

// endedByServer reads until the server closes c and returns what it sent.
func endedByServer(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection (got %q)", b)
	}
	return string(b)
}

// Over the per-client limit, port 25 answers 421 and the implicit-TLS port closes without a
// cleartext byte (which a TLS client would read as a failed handshake); the refusals are logged
// once.
func TestOverLimitOnImplicitTLSIsAPlainClose(t *testing.T) {
	lim := DefaultLimits
	lim.MaxConnsPerIP = 1
	plain, implicit, _, logs := startBoth(t, lim)
	for _, addr := range []string{plain, implicit} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if addr == plain {
			bufio.NewReader(c).ReadString('\n') // the greeting: the session is counted
		}
	}
	c, err := net.Dial("tcp", plain)
	if err != nil {
		t.Fatal(err)
	}
	if got := endedByServer(t, c); !strings.HasPrefix(got, "421 4.7.0") {
		t.Errorf("port 25 over the limit: %q", got)
	}
	for range 3 {
		c, err = net.Dial("tcp", implicit)
		if err != nil {
			t.Fatal(err)
		}
		if got := endedByServer(t, c); got != "" {
			t.Errorf("implicit TLS over the limit wrote %q before any handshake", got)
		}
	}
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("%d refusal lines, want 1:\n%s", n, logs.String())
	}
}

// A TLS handshake that does not come, on the implicit-TLS port or after STARTTLS, ends at
// HandshakeTimeout even though the idle timeout is long; the failure is an INFO line, not ERROR.
func TestHandshakeDeadline(t *testing.T) {
	lim := DefaultLimits
	lim.IdleTimeout = time.Hour
	lim.HandshakeTimeout = 100 * time.Millisecond
	plain, implicit, _, logs := startBoth(t, lim)
	c, err := net.Dial("tcp", implicit)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0x16}) // the first byte of a ClientHello, then nothing
	endedByServer(t, c)

	cl := dialMX(t, plain)
	cl.cmd("EHLO slow.test", "250 ")
	cl.cmd("STARTTLS", "220 ")
	endedByServer(t, cl.c)

	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a failed handshake logged at ERROR:\n%s", logs.String())
	}
}

// A DATA transfer slower than MinDataRate ends when its size-scaled deadline passes, even though
// each read is well within the idle timeout; nothing is stored. A transfer at a good pace on the
// same limits is accepted.
func TestDataTransferHasAMinimumRate(t *testing.T) {
	lim := DefaultLimits
	lim.IdleTimeout = time.Hour
	lim.MinDataRate = 64 << 10 // 64 KiB/s: the 64 KiB slack lasts one second
	lim.DataGrace = 100 * time.Millisecond
	plain, _, st, _ := startBoth(t, lim)

	cl := startData(t, plain)
	cl.c.Write([]byte("Subject: at a good pace\r\n\r\n" + strings.Repeat("0123456789abcdef", 1024) + "\r\n"))
	cl.cmd(".", "250 ")

	cl = startData(t, plain)
	c := cl.c
	done := make(chan string)
	go func() { done <- endedByServer(t, c) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; ; sent++ {
		select {
		case got := <-done:
			if strings.Contains(got, "250 ") {
				t.Fatalf("the slow transfer was accepted: %q", got)
			}
			ctx := context.Background()
			inbox, _ := st.MailboxByName(ctx, 1, "INBOX")
			if msgs, _ := st.Messages(ctx, inbox.ID); len(msgs) != 1 {
				t.Errorf("INBOX holds %d messages, want only the one sent at a good pace", len(msgs))
			}
			return
		case <-tick.C:
			if sent > 2000 {
				t.Fatal("the slow transfer was never cut off")
			}
			c.Write([]byte("x"))
		}
	}
}

// startData opens a session on addr and goes as far as DATA's 354.
func startData(t *testing.T, addr string) *client {
	t.Helper()
	cl := dialMX(t, addr)
	cl.cmd("EHLO client.test", "250 ")
	cl.cmd("MAIL FROM:<x@remote.test>", "250 ")
	cl.cmd("RCPT TO:<alice@example.test>", "250 ")
	cl.cmd("DATA", "354 ")
	return cl
}
