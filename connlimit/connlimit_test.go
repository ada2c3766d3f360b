package connlimit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mailstead/mailtest/testkit"
)

// listen opens a limited listener on a random loopback address and accepts in the background;
// accepted connections arrive on the returned channel.
func listen(t *testing.T, lim Limits) (*Listener, chan net.Conn, *testkit.LogBuffer, *atomic.Int64) {
	t.Helper()
	ip := fmt.Sprintf("127.%d.%d.%d", rand.IntN(250)+1, rand.IntN(250)+1, rand.IntN(250)+1)
	raw, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	var refused atomic.Int64
	l := Wrap(raw, "test", lim, slog.New(slog.NewTextHandler(logs, nil)), func(string) { refused.Add(1) })
	t.Cleanup(func() { l.Close() })
	conns := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	return l, conns, logs, &refused
}

func dialFrom(t *testing.T, l net.Listener, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c without a byte (a plain close).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(fmt.Sprint(err), "reset"))
}

// One client gets MaxPerClient connections; the next ones are closed at once, logged once per
// interval and counted each; another client still gets in; a closed connection frees its slot
// at once.
func TestPerClientLimit(t *testing.T) {
	l, conns, logs, refused := listen(t, Limits{MaxPerClient: 3, MaxConns: 100})
	var held []net.Conn
	for range 3 {
		dialFrom(t, l, "127.0.0.2")
		held = append(held, <-conns)
	}
	for range 10 {
		if c := dialFrom(t, l, "127.0.0.2"); !closedByServer(c) {
			t.Fatal("connection over the per-client limit was not closed")
		}
	}
	if refused.Load() != 10 {
		t.Errorf("%d refusals counted, want 10", refused.Load())
	}
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("%d refusal lines for one client, want 1:\n%s", n, logs)
	}
	dialFrom(t, l, "127.0.0.3")
	other := <-conns
	if total, client := l.Open("127.0.0.2"); total != 4 || client != 3 {
		t.Errorf("open: %d in all, %d from the client; want 4 and 3", total, client)
	}
	held[0].Close()
	if _, client := l.Open("127.0.0.2"); client != 2 {
		t.Errorf("after a close the client holds %d slots, want 2", client)
	}
	dialFrom(t, l, "127.0.0.2")
	held[0] = <-conns
	other.Close()
	other.Close() // a second Close frees nothing more
	if total, _ := l.Open("127.0.0.3"); total != 3 {
		t.Errorf("open in all: %d, want 3", total)
	}
}

func TestTotalLimit(t *testing.T) {
	l, conns, _, refused := listen(t, Limits{MaxPerClient: 10, MaxConns: 2})
	for i := range 2 {
		dialFrom(t, l, fmt.Sprintf("127.0.1.%d", i+1))
		<-conns
	}
	if c := dialFrom(t, l, "127.0.1.9"); !closedByServer(c) {
		t.Fatal("connection over the total limit was not closed")
	}
	if refused.Load() != 1 {
		t.Errorf("%d refusals counted, want 1", refused.Load())
	}
}

// A client that sends nothing is cut off by the first-read deadline; a client that stops reading
// is cut off by the write deadline.
func TestDeadlines(t *testing.T) {
	l, conns, _, _ := listen(t, Limits{FirstRead: 50 * time.Millisecond, Write: 50 * time.Millisecond})
	client := dialFrom(t, l, "127.0.0.2")
	c := <-conns
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read from a silent client: %v, want a deadline error", err)
	}
	buf := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ { // the client never reads: buffers fill, then the deadline
		_, werr = c.Write(buf)
	}
	if !errors.Is(werr, os.ErrDeadlineExceeded) {
		t.Errorf("write to a client that does not read: %v, want a deadline error", werr)
	}
	_ = client
}
