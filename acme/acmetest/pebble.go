// Package acmetest runs a real ACME CA for tests: Pebble v2.10.3 (the go.mod
// tool) with pebble-challtestsrv as its DNS server, both on loopback. It is
// for tests only and must never be linked into the mailstead binary.
//
// The tools need only Go, so tests using them run in plain `go test`. When
// they cannot be built the test is skipped, or fails if MAILSTEAD_INTEROP=1.
package acmetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options say where Pebble validates challenges and which names resolve.
type Options struct {
	// HTTPPort and TLSPort are the ports Pebble connects to on 127.0.0.1
	// for HTTP-01 and TLS-ALPN-01: the server's 80 and 443 plus offset.
	HTTPPort, TLSPort int
	// Names get an A record 127.0.0.1 in the DNS server.
	Names []string
	// DNSServer (host:port), when set, is used by Pebble instead of a
	// pebble-challtestsrv of its own: for tests that already run a fake zone
	// (mailtest) holding the server's A records. Pebble queries it over TCP.
	// Names must then be empty.
	DNSServer string
	// Validity of issued certificates; zero means 90 days.
	Validity time.Duration
}

// CA is a running Pebble and its DNS server. Both stop when the test ends.
type CA struct {
	// DirectoryURL is the ACME directory (acme.Config.Directory).
	DirectoryURL string
	// Client talks to the directory (acme.Config.HTTPClient): it trusts
	// Pebble's HTTPS certificate and counts new orders.
	Client *http.Client
	// Roots holds Pebble's issuing root: what TLS clients verify against.
	Roots *x509.CertPool
	// DNSAddr is the DNS server (host:port) Pebble resolves with; point the
	// server's --dns here so both see the same zone.
	DNSAddr string

	orders   atomic.Int32
	mgmtAddr string // challtestsrv management API
	resolver *net.Resolver
}

// Start runs Pebble and challtestsrv for the rest of the test.
func Start(t testing.TB, opts Options) *CA {
	t.Helper()
	pebbleBin, challBin, src := tools(t)

	var logMu sync.Mutex
	var logBuf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			logMu.Lock()
			t.Logf("pebble output:\n%s", logBuf.String())
			logMu.Unlock()
		}
	})
	start := func(bin string, env []string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout = lockedWriter{&logMu, &logBuf}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}

	ca := &CA{DNSAddr: opts.DNSServer}
	if ca.DNSAddr == "" {
		ca.DNSAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		ca.mgmtAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		start(challBin, nil,
			"-management", ca.mgmtAddr, "-dnsserver", ca.DNSAddr,
			"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "",
			"-defaultIPv4", "", "-defaultIPv6", "")
	} else if len(opts.Names) > 0 {
		t.Fatalf("acmetest: Names need the built-in DNS server; add them to %s yourself", opts.DNSServer)
	}

	validity := opts.Validity
	if validity <= 0 {
		validity = 90 * 24 * time.Hour
	}
	acmeAddr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	mgmtAddr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  acmeAddr,
		"managementListenAddress":        mgmtAddr,
		"certificate":                    filepath.Join(src, "test/certs/localhost/cert.pem"),
		"privateKey":                     filepath.Join(src, "test/certs/localhost/key.pem"),
		"httpPort":                       opts.HTTPPort,
		"tlsPort":                        opts.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{
			"default": map[string]any{"description": "test", "validityPeriod": int64(validity / time.Second)},
		},
	}}
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	data, _ := json.Marshal(conf)
	if err := os.WriteFile(confFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// No sleeps before validation, no random bad nonces, a fresh
	// validation for every order.
	start(pebbleBin, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", confFile, "-dnsserver", ca.DNSAddr)

	minica, err := os.ReadFile(filepath.Join(src, "test/certs/pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(minica)
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(base.CloseIdleConnections)
	ca.Client = &http.Client{Transport: countOrders{base, &ca.orders}, Timeout: 30 * time.Second}
	ca.DirectoryURL = "https://" + acmeAddr + "/dir"

	if ca.mgmtAddr != "" {
		WaitFor(t, "pebble-challtestsrv", func() error {
			c, err := net.Dial("tcp", ca.mgmtAddr)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	WaitFor(t, "pebble", func() error {
		resp, err := ca.Client.Get(ca.DirectoryURL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("directory: %s", resp.Status)
		}
		return nil
	})

	// Pebble makes a new root at every start; its management API serves it.
	resp, err := ca.Client.Get("https://" + mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	ca.Roots = x509.NewCertPool()
	if !ca.Roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("no root in %q", rootPEM)
	}

	for _, name := range opts.Names {
		ca.AddA(t, name, "127.0.0.1")
	}
	ca.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, ca.DNSAddr)
	}}
	return ca
}

// tools returns the paths of the pebble and pebble-challtestsrv binaries
// (built into Go's build cache by `go tool -n`) and Pebble's module
// directory, which holds its HTTPS test certificate.
func tools(t testing.TB) (pebble, challtestsrv, src string) {
	t.Helper()
	run := func(args ...string) string {
		out, err := exec.Command("go", args...).Output()
		if err != nil {
			msg := fmt.Sprintf("go %s: %v", strings.Join(args, " "), err)
			if ee, ok := err.(*exec.ExitError); ok {
				msg += "\n" + string(ee.Stderr)
			}
			if os.Getenv("MAILSTEAD_INTEROP") == "1" {
				t.Fatalf("pebble is needed: %s", msg)
			}
			t.Skipf("skipping: pebble could not be built (%s)", msg)
		}
		return strings.TrimSpace(string(out))
	}
	pebble = run("tool", "-n", "pebble")
	challtestsrv = run("tool", "-n", "pebble-challtestsrv")
	src = run("list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2")
	return pebble, challtestsrv, src
}

// AddA makes the built-in DNS server answer A queries for name with ip.
func (ca *CA) AddA(t testing.TB, name, ip string) {
	t.Helper()
	if ca.mgmtAddr == "" {
		t.Fatalf("acmetest: AddA with an outside DNS server %s", ca.DNSAddr)
	}
	body, _ := json.Marshal(map[string]any{"host": name, "addresses": []string{ip}})
	resp, err := http.Post("http://"+ca.mgmtAddr+"/add-a", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("add-a %s: %s", name, resp.Status)
	}
}

// LookupIP resolves through the CA's DNS server (acme.Resolver).
func (ca *CA) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	return ca.resolver.LookupIP(ctx, "ip", host)
}

// Orders returns how many new orders (RFC 8555 section 7.4) went through
// Client.
func (ca *CA) Orders() int { return int(ca.orders.Load()) }

type countOrders struct {
	base http.RoundTripper
	n    *atomic.Int32
}

func (c countOrders) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.URL.Path == "/order-plz" { // Pebble's newOrder
		c.n.Add(1)
	}
	return c.base.RoundTrip(req)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitFor polls ready until it returns nil, failing the test after 60 s.
func WaitFor(t testing.TB, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
