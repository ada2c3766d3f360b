package acme

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// memKV is the store's kv table in memory.
type memKV struct {
	mu   sync.Mutex
	data map[string][]byte
}

func newMemKV() *memKV { return &memKV{data: map[string][]byte{}} }

func (kv *memKV) GetKV(_ context.Context, key string) ([]byte, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.data[key]
	if !ok {
		return nil, fmt.Errorf("kv %q: %w", key, fs.ErrNotExist)
	}
	return append([]byte(nil), v...), nil
}

func (kv *memKV) PutKV(_ context.Context, key string, value []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.data[key] = append([]byte(nil), value...)
	return nil
}

func (kv *memKV) DeleteKV(_ context.Context, key string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	delete(kv.data, key)
	return nil
}

func (kv *memKV) keys() []string {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	var ks []string
	for k := range kv.data {
		ks = append(ks, k)
	}
	return ks
}

// staticResolver answers every name from a fixed table.
type staticResolver map[string][]net.IP

func (r staticResolver) LookupIP(_ context.Context, host string) ([]net.IP, error) {
	ips, ok := r[host]
	if !ok {
		return nil, fmt.Errorf("%s: no such host", host)
	}
	return ips, nil
}

// testLogger collects the log and prints it if the test fails.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("ACME_TEST_LOG") != "" {
			mu.Lock()
			t.Logf("log:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// serveLines accepts connections on ln and runs a tiny line protocol on each:
// "STARTTLS" upgrades a plain connection with cfg (when starttls is set),
// any other line is echoed back. With starttls false the listener speaks TLS
// from the first byte, like 993/995/465.
func serveLines(t *testing.T, ln net.Listener, cfg *tls.Config, starttls bool) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				var conn net.Conn = c
				if !starttls {
					conn = tls.Server(c, cfg)
				}
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if starttls && strings.TrimSpace(line) == "STARTTLS" {
						fmt.Fprintf(conn, "220 go ahead\r\n")
						conn = tls.Server(c, cfg)
						r = bufio.NewReader(conn)
						continue
					}
					fmt.Fprintf(conn, "echo %s", line)
				}
			}()
		}
	}()
}

// startTLS dials addr, sends STARTTLS on the plain connection and upgrades
// it with cfg, the way an SMTP, IMAP or POP3 client does.
func startTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "STARTTLS\r\n")
	line, err := bufio.NewReader(c).ReadString('\n') // the server sends nothing more before the handshake
	if err != nil || !strings.HasPrefix(line, "220") {
		c.Close()
		t.Fatalf("STARTTLS: %q, %v", line, err)
	}
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		c.Close()
		t.Fatalf("handshake after STARTTLS: %v", err)
	}
	return tc
}

// dialTLS opens an implicit-TLS connection.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { tc.Close() })
	return tc
}

// echo sends a line and checks the echo: the connection still works.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%s\r\n", msg); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read echo of %q: %v", msg, err)
	}
	if want := "echo " + msg + "\r\n"; line != want {
		t.Fatalf("echo: got %q, want %q", line, want)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func leafOf(c *tls.Conn) *x509.Certificate {
	return c.ConnectionState().PeerCertificates[0]
}

// verifyChain checks the peer chain against roots for name, as a client
// with SNI-less handshake must do by hand.
func verifyChain(t *testing.T, c *tls.Conn, roots *x509.CertPool, name string) {
	t.Helper()
	certs := c.ConnectionState().PeerCertificates
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name}); err != nil {
		t.Fatalf("verify %s against roots: %v", name, err)
	}
}

// ecdsaOnly and rsaOnly make a client that supports only one key type.
func ecdsaOnly(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	cfg.MaxVersion = tls.VersionTLS12
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	return cfg
}

func rsaOnly(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	cfg.MaxVersion = tls.VersionTLS12
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	return cfg
}
