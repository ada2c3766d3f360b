package acme

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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The Pebble tests run a real ACME CA (Pebble v2.10.3, a go.mod tool) and
// its DNS server (pebble-challtestsrv) on loopback. They need only Go, so
// they run in plain `go test`; they skip only when the tools cannot be
// built, and fail instead when MAILSTEAD_INTEROP=1.

var pebbleBuild struct {
	once sync.Once
	dir  string // holds pebble and pebble-challtestsrv
	src  string // pebble's module directory (test certificates)
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pebbleBuild.dir != "" {
		os.RemoveAll(pebbleBuild.dir)
	}
	os.Exit(code)
}

// pebbleTools builds the two binaries once per test binary.
func pebbleTools(t *testing.T) (dir, src string) {
	t.Helper()
	pebbleBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "mailstead-pebble-")
		if err != nil {
			pebbleBuild.err = err
			return
		}
		pebbleBuild.dir = dir
		out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"github.com/letsencrypt/pebble/v2/cmd/pebble",
			"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv").CombinedOutput()
		if err != nil {
			pebbleBuild.err = fmt.Errorf("go build pebble: %v\n%s", err, out)
			return
		}
		out, err = exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
		if err != nil {
			pebbleBuild.err = fmt.Errorf("go list pebble: %v", err)
			return
		}
		pebbleBuild.src = strings.TrimSpace(string(out))
	})
	if pebbleBuild.err != nil {
		if os.Getenv("MAILSTEAD_INTEROP") == "1" {
			t.Fatalf("pebble is needed: %v", pebbleBuild.err)
		}
		t.Skipf("skipping: pebble could not be built (%v)", pebbleBuild.err)
	}
	return pebbleBuild.dir, pebbleBuild.src
}

// pebbleCA is a running Pebble with its DNS server.
type pebbleCA struct {
	dirURL    string
	client    *http.Client   // trusts Pebble's HTTPS certificate; counts orders
	roots     *x509.CertPool // Pebble's issuing root: what clients verify against
	resolver  Resolver       // asks challtestsrv, like Pebble does
	newOrders atomic.Int32
	dnsMgmt   string
}

func freePort(t *testing.T) int {
	t.Helper()
	ln := listen(t)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPebble starts challtestsrv (answering A for the given names with
// 127.0.0.1) and Pebble, which validates HTTP-01 on 127.0.0.1:httpPort and
// TLS-ALPN-01 on 127.0.0.1:tlsPort.
func startPebble(t *testing.T, httpPort, tlsPort int, names ...string) *pebbleCA {
	t.Helper()
	bin, src := pebbleTools(t)
	var logMu sync.Mutex
	var logBuf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			logMu.Lock()
			t.Logf("pebble output:\n%s", logBuf.String())
			logMu.Unlock()
		}
	})
	start := func(name string, env []string, args ...string) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout = lockedWriter{&logMu, &logBuf}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}

	dnsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := &pebbleCA{dnsMgmt: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	start("pebble-challtestsrv", nil,
		"-management", p.dnsMgmt, "-dnsserver", dnsAddr,
		"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "",
		"-defaultIPv4", "", "-defaultIPv6", "")

	acmeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mgmtAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  acmeAddr,
		"managementListenAddress":        mgmtAddr,
		"certificate":                    filepath.Join(src, "test/certs/localhost/cert.pem"),
		"privateKey":                     filepath.Join(src, "test/certs/localhost/key.pem"),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{
			"default": map[string]any{"description": "90 days", "validityPeriod": 90 * 24 * 3600},
		},
	}}
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	data, _ := json.Marshal(conf)
	if err := os.WriteFile(confFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	start("pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", confFile, "-dnsserver", dnsAddr)

	minica, err := os.ReadFile(filepath.Join(src, "test/certs/pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(minica)
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(base.CloseIdleConnections)
	p.client = &http.Client{Transport: countOrders{base, &p.newOrders}, Timeout: 30 * time.Second}
	p.dirURL = "https://" + acmeAddr + "/dir"

	// Wait until both are up.
	waitFor(t, "pebble-challtestsrv", func() error {
		c, err := net.Dial("tcp", p.dnsMgmt)
		if err == nil {
			c.Close()
		}
		return err
	})
	waitFor(t, "pebble", func() error {
		resp, err := p.client.Get(p.dirURL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("directory: %s", resp.Status)
		}
		return nil
	})

	resp, err := p.client.Get("https://" + mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("no root in %q", rootPEM)
	}

	for _, name := range names {
		p.addA(t, name, "127.0.0.1")
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}
	p.resolver = netResolver{r}
	return p
}

// addA makes challtestsrv answer A queries for name.
func (p *pebbleCA) addA(t *testing.T, name, ip string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"host": name, "addresses": []string{ip}})
	resp, err := http.Post("http://"+p.dnsMgmt+"/add-a", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("add-a %s: %s", name, resp.Status)
	}
}

// config returns a Config that orders from this Pebble.
func (p *pebbleCA) config(httpsPort int) Config {
	return Config{
		Hostname:   testHost,
		Directory:  p.dirURL,
		Email:      "postmaster@example.test",
		HTTPClient: p.client,
		HTTPSPort:  httpsPort,
	}
}

type netResolver struct{ r *net.Resolver }

func (n netResolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	return n.r.LookupIP(ctx, "ip", host)
}

// countOrders counts newOrder requests (RFC 8555 section 7.4).
type countOrders struct {
	base http.RoundTripper
	n    *atomic.Int32
}

func (c countOrders) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.URL.Path == "/order-plz" {
		c.n.Add(1)
	}
	return c.base.RoundTrip(req)
}

func waitFor(t *testing.T, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
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

// runManager runs m.Run until the test ends.
func runManager(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// waitIssued waits until name holds its certificates from the CA: ECDSA,
// and RSA too for the hostname.
func waitIssued(t *testing.T, m *Manager, name string) {
	t.Helper()
	waitFor(t, "certificates for "+name, func() error {
		pair := m.setup().live.Load().byName[name]
		if pair.ecdsa == nil || (pair.rsa == nil && name == m.setup().hostname) {
			for _, h := range m.Status().Hosts {
				if h.Name == name {
					return fmt.Errorf("%s: %s %s %s", name, h.State, h.Detail, h.LastError)
				}
			}
			return fmt.Errorf("%s: not listed", name)
		}
		return nil
	})
}

func portOf(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

func itoa(n int) string { return strconv.Itoa(n) }
