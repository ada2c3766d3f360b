package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"mailstead/mailtest/storetest"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"mailstead/dns"
	"mailstead/dns/dnstest"
	"mailstead/mailauth"
	"mailstead/mailtest/testkit"
	"mailstead/store"
)

// startMX runs an MX server on a store with alice@example.test and returns its address.
func startMX(t *testing.T, lim Limits, auth *mailauth.Checker) (string, *store.Store) {
	t.Helper()
	return startMXWith(t, func(c *Config) { c.Limits, c.Auth = lim, auth })
}

// startMXWith starts an MX on loopback for alice@example.test with the Config mutate sets.
func startMXWith(t *testing.T, mutate func(*Config)) (string, *store.Store) {
	t.Helper()
	st := mxStore(t)
	cfg := Config{Store: st, Hostname: func() string { return "mx.example.test" }, Limits: DefaultLimits,
		TLSConfig: testkit.SelfSignedTLS(t, "mx.example.test")}
	mutate(&cfg)
	srv := NewMX(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return l.Addr().String(), st
}

// mxStore is a store with example.test and alice@example.test.
func mxStore(t *testing.T) *store.Store {
	t.Helper()
	st := storetest.Open(t, "example.test")
	storetest.Account(t, st, "alice@example.test", "pw")
	return st
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialMX(t *testing.T, addr string) *client {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	cl.expect("220 ")
	return cl
}

func (c *client) expect(prefix string) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("want %q: %v", prefix, err)
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		if !strings.HasPrefix(line, prefix) {
			c.t.Fatalf("got %q, want %q", line, prefix)
		}
		return
	}
}

func (c *client) cmd(line, want string) {
	c.t.Helper()
	c.c.Write([]byte(line + "\r\n"))
	c.expect(want)
}

// TestIdleTimeoutIsPerRead: a slow but steady DATA transfer longer than the idle timeout
// succeeds; a client that stops talking is told 421 and disconnected.
func TestIdleTimeoutIsPerRead(t *testing.T) {
	lim := DefaultLimits
	lim.IdleTimeout = 300 * time.Millisecond
	addr, _ := startMX(t, lim, nil)
	c := dialMX(t, addr)
	c.cmd("EHLO slow.test", "250 ")
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<alice@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	for i := 0; i < 8; i++ { // 8 × 100 ms: well past the idle timeout in total
		c.c.Write([]byte("line of a slow transfer\r\n"))
		time.Sleep(100 * time.Millisecond)
	}
	c.cmd(".", "250 ")
	time.Sleep(500 * time.Millisecond)
	c.expect("421 4.4.2")
}

// TestPanicInSessionIsContained: a panic while handling one message ends that session with a
// 421; the server keeps serving others.
func TestPanicInSessionIsContained(t *testing.T) {
	var calls atomic.Int32
	addr, st := startMXWith(t, func(c *Config) {
		c.Delivered = func(*Delivered, int) {
			if calls.Add(1) == 1 {
				panic("observer exploded")
			}
		}
	})
	c := dialMX(t, addr)
	c.cmd("EHLO a.test", "250 ")
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<alice@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	c.cmd("boom\r\n.", "421 ")
	c2 := dialMX(t, addr)
	c2.cmd("EHLO b.test", "250 ")
	c2.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c2.cmd("RCPT TO:<alice@example.test>", "250 ")
	c2.cmd("DATA", "354 ")
	c2.cmd("fine\r\n.", "250 ")
	if n, _ := st.CountRows(context.Background(), "messages"); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
}

// authZone is a fake DNS zone for port-25 sender authentication from 127.0.0.1: reject.test
// publishes DMARC p=reject, junk.test p=quarantine, and temp.test's DMARC lookup fails; none
// authorises 127.0.0.1 in SPF.
func authChecker(t *testing.T) *mailauth.Checker {
	z := dnstest.NewZone(t)
	for _, d := range []string{"reject.test", "junk.test", "temp.test", "remote.test"} {
		z.Add(d + ". 300 IN A 192.0.2.1")
		z.AddTXT(d, "v=spf1 -all")
	}
	z.AddTXT("_dmarc.reject.test", "v=DMARC1; p=reject")
	z.AddTXT("_dmarc.junk.test", "v=DMARC1; p=quarantine")
	z.SetFailure("_dmarc.temp.test", mdns.RcodeServerFailure)
	r := dns.New(z.Addr())
	r.Timeout, r.Attempts = time.Second, 1
	return &mailauth.Checker{Resolver: r, Hostname: "mx.example.test"}
}

// TestSenderAuthVerdicts: mailauth's reject reaches the client; a temporary DNS failure is a
// 451, never a 5xx; a junk verdict lands in Junk with our Authentication-Results on top, and a
// forged one claiming our name is removed.
func TestSenderAuthVerdicts(t *testing.T) {
	addr, st := startMX(t, DefaultLimits, authChecker(t))
	for _, tc := range []struct{ domain, want string }{
		{"reject.test", "550 5.7.1 DMARC policy of reject.test"},
		{"temp.test", "451 4.7.0"},
		{"junk.test", "250 "},
	} {
		c := dialMX(t, addr)
		c.cmd("EHLO a.test", "250 ")
		c.cmd("MAIL FROM:<x@"+tc.domain+">", "250 ")
		c.cmd("RCPT TO:<alice@example.test>", "250 ")
		c.cmd("DATA", "354 ")
		c.cmd("From: x@"+tc.domain+"\r\nAuthentication-Results: mx.example.test; dkim=pass\r\n\r\nhi\r\n.", tc.want)
	}
	ctx := context.Background()
	a, _ := st.AccountByAddress(ctx, "alice@example.test")
	junk, _ := st.MailboxByName(ctx, a.ID, "Junk")
	msgs, _ := st.Messages(ctx, junk.ID)
	if len(msgs) != 1 {
		t.Fatalf("Junk has %d messages, want 1", len(msgs))
	}
	data, _ := st.MessageData(ctx, msgs[0].ID)
	ar, rcv := strings.Index(string(data), "Authentication-Results: mx.example.test;"), strings.Index(string(data), "Received: ")
	if ar < 0 || rcv < ar || !strings.Contains(string(data), "dmarc=fail") || strings.Contains(string(data), "dkim=pass") {
		t.Fatalf("our Authentication-Results missing or misplaced, or the forged one kept:\n%s", data)
	}
	if n, _ := st.CountRows(ctx, "messages"); n != 1 {
		t.Fatalf("%d messages stored, want only the junk one", n)
	}
}

// TestTooManyErrorsCloses: a client that keeps getting rejected is disconnected.
func TestTooManyErrorsCloses(t *testing.T) {
	lim := DefaultLimits
	lim.MaxErrors = 3
	addr, _ := startMX(t, lim, nil)
	c := dialMX(t, addr)
	c.cmd("EHLO a.test", "250 ")
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	for i := 0; i < 3; i++ {
		c.cmd("RCPT TO:<nobody@example.test>", "550 5.1.1")
	}
	c.cmd("RCPT TO:<nobody@example.test>", "421 4.7.0")
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after too many errors")
	}
}

// TestImplicitTLS: port 465 style listener speaks TLS from the first byte.
func TestImplicitTLSListener(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := NewMX(Config{Store: st, Hostname: func() string { return "mx.example.test" }, TLSConfig: testkit.SelfSignedTLS(t, "mx.example.test")})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.ServeTLS(l)
	defer srv.Shutdown(context.Background())
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "220 mx.example.test") {
		t.Fatalf("greeting %q", line)
	}
}

// TestLongMessageLineAccepted: the line limit guards commands; a body line longer than it is
// accepted (bounded by the message size limit), not cut off mid-transfer.
func TestLongMessageLineAccepted(t *testing.T) {
	lim := DefaultLimits
	lim.MaxLineLength = 1000
	addr, _ := startMX(t, lim, nil)
	c := dialMX(t, addr)
	c.cmd("EHLO a.test", "250 ")
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<alice@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	c.c.Write([]byte("Subject: x\r\n\r\n" + strings.Repeat("y", 3000) + "\r\nmore\r\n.\r\n"))
	c.expect("250 ")
	c.cmd("NOOP", "250")
}

// TestSTARTTLSResumesWithTicketsAfterClientFinished: port 25 asks for an optional client
// certificate, which makes Go send session tickets after the client's Finished (the order
// Microsoft's MTAs need), and a returning client resumes its session.
func TestSTARTTLSResumesWithTicketsAfterClientFinished(t *testing.T) {
	addr, _ := startMX(t, DefaultLimits, nil)
	cache := tls.NewLRUClientSessionCache(4)
	for i, wantResume := range []bool{false, true} {
		c := dialMX(t, addr)
		c.cmd("EHLO mta.remote.test", "250 ")
		c.cmd("STARTTLS", "220 ")
		asked := false
		tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.test", ClientSessionCache: cache,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				asked = true
				return &tls.Certificate{}, nil // no certificate: the request is optional
			}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		tr := bufio.NewReader(tc)
		tc.Write([]byte("EHLO mta.remote.test\r\n"))
		for {
			line, err := tr.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "250 ") {
				break
			}
		}
		tc.Write([]byte("QUIT\r\n"))
		tr.ReadString('\n') // the ticket arrives with post-handshake data; reading lets the client store it
		if state := tc.ConnectionState(); state.DidResume != wantResume {
			t.Fatalf("connection %d: resumed = %v, want %v", i, state.DidResume, wantResume)
		}
		if !wantResume && !asked {
			t.Fatal("server did not ask for a client certificate: tickets would go in its first flight")
		}
		tc.Close()
	}
}
