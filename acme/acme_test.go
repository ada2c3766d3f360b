package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"mailstead/settings"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testHost = "mail.example.test"

func newTestManager(t *testing.T, cfg Config, kv KV, r Resolver) *Manager {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = testHost
	}
	m, err := New(context.Background(), cfg, kv, r, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// selfSignedRoots trusts the manager's self-signed certificates.
func selfSignedRoots(m *Manager) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(m.setup().selfSigned.ecdsa.Leaf)
	p.AddCert(m.setup().selfSigned.rsa.Leaf)
	return p
}

// Before any certificate is issued, every handshake gets the self-signed
// certificate for the hostname: with SNI, without SNI, with an unknown name;
// ECDSA to modern clients and RSA to clients that cannot do ECDSA.
func TestSelfSignedBeforeIssuance(t *testing.T) {
	kv := newMemKV()
	m := newTestManager(t, Config{DisableACME: true}, kv, nil)
	ln := listen(t)
	serveLines(t, ln, m.TLSConfig(), false)
	roots := selfSignedRoots(m)

	tests := []struct {
		name    string
		sni     string
		client  func(*tls.Config) *tls.Config
		wantRSA bool
	}{
		{"sni", testHost, func(c *tls.Config) *tls.Config { return c }, false},
		{"no sni", "", func(c *tls.Config) *tls.Config { return c }, false},
		{"unknown sni", "other.example.test", func(c *tls.Config) *tls.Config { return c }, false},
		{"tls12 ecdsa", testHost, ecdsaOnly, false},
		{"tls12 rsa only", testHost, rsaOnly, true},
		{"no sni rsa only", "", rsaOnly, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.client(&tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
			c := dialTLS(t, ln.Addr().String(), cfg)
			echo(t, c, "hello")
			verifyChain(t, c, roots, testHost)
			_, isRSA := leafOf(c).PublicKey.(*rsa.PublicKey)
			if isRSA != tt.wantRSA {
				t.Errorf("got RSA=%v, want %v", isRSA, tt.wantRSA)
			}
			if v := c.ConnectionState().Version; v < tls.VersionTLS12 {
				t.Errorf("TLS version %x", v)
			}
		})
	}

	st := m.Status()
	if st.Source != SourceSelfSigned || !slices.Contains(st.Names, testHost) {
		t.Errorf("status: %+v", st)
	}
}

// The self-signed pair is generated once and kept in the store; a new
// hostname gets a new pair.
func TestSelfSignedKept(t *testing.T) {
	kv := newMemKV()
	m1 := newTestManager(t, Config{DisableACME: true}, kv, nil)
	m2 := newTestManager(t, Config{DisableACME: true}, kv, nil)
	for _, pair := range [][2]*tls.Certificate{{m1.setup().selfSigned.ecdsa, m2.setup().selfSigned.ecdsa}, {m1.setup().selfSigned.rsa, m2.setup().selfSigned.rsa}} {
		if pair[0].Leaf.SerialNumber.Cmp(pair[1].Leaf.SerialNumber) != 0 {
			t.Errorf("restart made a new self-signed certificate")
		}
	}
	if _, ok := m1.setup().selfSigned.ecdsa.PrivateKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("ECDSA self-signed key is %T", m1.setup().selfSigned.ecdsa.PrivateKey)
	}
	m3 := newTestManager(t, Config{DisableACME: true, Hostname: "mx.example.test"}, kv, nil)
	if err := m3.setup().selfSigned.ecdsa.Leaf.VerifyHostname("mx.example.test"); err != nil {
		t.Errorf("after hostname change: %v", err)
	}
	m4 := newTestManager(t, Config{Hostname: "127.0.0.2"}, kv, nil)
	if err := m4.setup().selfSigned.rsa.Leaf.VerifyHostname("127.0.0.2"); err != nil || m4.setup().acme {
		t.Errorf("address as hostname: %v, ACME %v", err, m4.setup().acme)
	}
}

// A STARTTLS peer that comes back resumes its TLS session with a ticket, in
// TLS 1.3 and TLS 1.2 (Microsoft's MTAs rely on this), also on another
// listener of the same server.
func TestSessionResumptionAfterSTARTTLS(t *testing.T) {
	m := newTestManager(t, Config{DisableACME: true}, newMemKV(), nil)
	smtp, imap := listen(t), listen(t)
	serveLines(t, smtp, m.TLSConfig(), true)
	serveLines(t, imap, m.TLSConfig(), true)

	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cfg := &tls.Config{
				ServerName:         testHost,
				RootCAs:            selfSignedRoots(m),
				MinVersion:         version,
				MaxVersion:         version,
				ClientSessionCache: tls.NewLRUClientSessionCache(4),
			}
			for i, tt := range []struct {
				addr       string
				wantResume bool
			}{{smtp.Addr().String(), false}, {smtp.Addr().String(), true}, {smtp.Addr().String(), true}, {imap.Addr().String(), true}} {
				c := startTLS(t, tt.addr, cfg)
				// TLS 1.3 tickets arrive after the handshake: read something.
				echo(t, c, "EHLO client.example.test")
				if got := c.ConnectionState().DidResume; got != tt.wantResume {
					t.Errorf("connection %d: DidResume=%v, want %v", i, got, tt.wantResume)
				}
				c.Close()
			}
		})
	}
}

// Manual mode serves the files and picks up new files without a restart.
func TestManualCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair := func(name string, mtime time.Time) *x509.Certificate {
		t.Helper()
		pair, err := loadOrCreateSelfSigned(context.Background(), newMemKV(), name, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		writePEMPair(t, certFile, keyFile, pair.ecdsa)
		for _, f := range []string{certFile, keyFile} {
			if err := os.Chtimes(f, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		return pair.ecdsa.Leaf
	}
	first := writePair(testHost, time.Now().Add(-time.Hour))

	var clockMu sync.Mutex
	now := time.Now()
	m := newTestManager(t, Config{CertFile: certFile, KeyFile: keyFile}, newMemKV(), nil)
	m.setup().manual.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	ln := listen(t)
	serveLines(t, ln, m.TLSConfig(), false)

	c1 := dialTLS(t, ln.Addr().String(), &tls.Config{ServerName: testHost, InsecureSkipVerify: true})
	echo(t, c1, "one")
	if !leafOf(c1).Equal(first) {
		t.Fatalf("manual mode did not serve the file's certificate")
	}
	if st := m.Status(); st.Source != SourceManual || st.Directory != "" {
		t.Errorf("status: %+v", st)
	}

	second := writePair(testHost, time.Now())
	clockMu.Lock()
	now = now.Add(2 * manualStatInterval)
	clockMu.Unlock()
	c2 := dialTLS(t, ln.Addr().String(), &tls.Config{ServerName: testHost, InsecureSkipVerify: true})
	echo(t, c2, "two")
	if !leafOf(c2).Equal(second) {
		t.Fatalf("changed files were not reloaded")
	}
	echo(t, c1, "still there") // the first connection was not dropped

	// A broken rewrite keeps the previous certificate and reports the error.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	clockMu.Lock()
	now = now.Add(2 * manualStatInterval)
	clockMu.Unlock()
	c3 := dialTLS(t, ln.Addr().String(), &tls.Config{ServerName: testHost, InsecureSkipVerify: true})
	if !leafOf(c3).Equal(second) {
		t.Errorf("broken files replaced the good certificate")
	}
	if st := m.Status(); st.LastError == "" {
		t.Errorf("broken key not reported in status: %+v", st)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writePEMPair(t *testing.T, certFile, keyFile string, c *tls.Certificate) {
	t.Helper()
	var certPEM, keyPEM []byte
	certPEM = append(certPEM, pemBlock("CERTIFICATE", c.Certificate[0])...)
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = pemBlock("PRIVATE KEY", der)
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// No order is placed while the hostname resolves elsewhere: the CA's rate
// limits are not spent on validations that must fail.
func TestNoOrderUntilDNSPointsHere(t *testing.T) {
	r := staticResolver{testHost: {net.ParseIP("192.0.2.10")}}
	m := newTestManager(t, Config{Directory: "https://127.0.0.1:1/dir"}, newMemKV(), r)
	ctx := context.Background()
	m.check(ctx)
	if m.orders != 0 {
		t.Fatalf("%d orders placed for a name that resolves elsewhere", m.orders)
	}
	st := m.Status()
	if st.Hosts[0].State != "waiting for DNS" || !strings.Contains(st.Hosts[0].Detail, "192.0.2.10") {
		t.Errorf("status: %+v", st.Hosts[0])
	}

	// Partly ours is not enough either: the CA may pick the other address.
	r[testHost] = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("2001:db8::1")}
	m.mu.Lock()
	m.hosts[testHost].next = time.Time{}
	m.mu.Unlock()
	m.check(ctx)
	if m.orders != 0 {
		t.Fatalf("%d orders placed for a name that partly resolves elsewhere", m.orders)
	}
}

func TestHTTPHandlerRedirects(t *testing.T) {
	m := newTestManager(t, Config{DisableACME: true, HTTPSPort: 10443}, newMemKV(), nil)
	h := m.HTTPHandler(nil)
	tests := []struct {
		method, target string
		wantCode       int
		wantLocation   string
	}{
		{"GET", "http://mail.example.test:10080/admin/?x=1", http.StatusFound, "https://mail.example.test:10443/admin/?x=1"},
		{"HEAD", "http://mail.example.test/", http.StatusFound, "https://mail.example.test:10443/"},
		{"POST", "http://mail.example.test/login", http.StatusBadRequest, ""},
		{"GET", "http://mail.example.test/.well-known/acme-challenge/unknown", http.StatusNotFound, ""},
		{"GET", "http://evil.example.test/.well-known/acme-challenge/unknown", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.target, nil))
		if w.Code != tt.wantCode || w.Header().Get("Location") != tt.wantLocation {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.target, w.Code, w.Header().Get("Location"), tt.wantCode, tt.wantLocation)
		}
	}

	// A fallback gets what is not a challenge.
	fb := m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	w := httptest.NewRecorder()
	fb.ServeHTTP(w, httptest.NewRequest("GET", "http://autoconfig.example.test/mail/config-v1.1.xml", nil))
	if w.Code != http.StatusTeapot {
		t.Errorf("fallback not used: %d", w.Code)
	}
}

func TestDirectoryURL(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"", LetsEncryptURL, false},
		{"production", LetsEncryptURL, false},
		{"staging", LetsEncryptStagingURL, false},
		{"https://127.0.0.1:14000/dir", "https://127.0.0.1:14000/dir", false},
		{"letsencrypt.org", "", true},
	}
	for _, tt := range tests {
		got, err := directoryURL(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("directoryURL(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestDomainHosts(t *testing.T) {
	got := DomainHosts([]string{"Example.COM.", "", "example.org"})
	want := []string{"mta-sts.example.com", "autoconfig.example.com", "autodiscover.example.com",
		"mta-sts.example.org", "autoconfig.example.org", "autodiscover.example.org"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"bad hostname", Config{Hostname: "mail example.test"}},
		{"half manual", Config{Hostname: testHost, CertFile: "/x.pem"}},
		{"bad directory", Config{Hostname: testHost, Directory: "ftp://x"}},
	}
	for _, tt := range tests {
		if _, err := New(context.Background(), tt.cfg, newMemKV(), nil, nil); err == nil {
			t.Errorf("%s: New accepted %+v", tt.name, tt.cfg)
		}
	}
}

// Challenge tokens stay in memory; everything else goes to the kv table
// under "acme/".
func TestCacheKeys(t *testing.T) {
	kv := newMemKV()
	c := &kvCache{kv: kv, prefix: "acme/ca.example/", tokens: map[string][]byte{}}
	ctx := context.Background()
	for _, k := range []string{"acme_account+key", "mail.example.test+token", "abc+http-01"} {
		if err := c.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if v, err := c.Get(ctx, k); err != nil || string(v) != "v" {
			t.Fatalf("get %s: %q %v", k, v, err)
		}
	}
	if got := kv.keys(); !slices.Equal(got, []string{"acme/ca.example/acme_account+key"}) {
		t.Errorf("kv keys: %v", got)
	}
	for _, k := range []string{"acme_account+key", "abc+http-01", "missing"} {
		if err := c.Delete(ctx, k); err != nil {
			t.Errorf("delete %s: %v", k, err)
		}
	}
	if _, err := c.Get(ctx, "acme_account+key"); err == nil {
		t.Errorf("deleted key still there")
	}
}

func TestValidateSetting(t *testing.T) {
	tests := []struct {
		def   settings.Def
		value string
		ok    bool
	}{
		{SettingDirectory, "staging", true},
		{SettingDirectory, "https://acme.example.test/directory", true},
		{SettingDirectory, "acme.example.test", false},
		{SettingEmail, "", true},
		{SettingEmail, "postmaster@example.test", true},
		{SettingEmail, "postmaster", false},
		{SettingCertFile, "/etc/ssl/mail.pem", true},
		{SettingKeyFile, "mail.key", false},
	}
	for _, tt := range tests {
		if err := tt.def.Validate(tt.value); (err == nil) != tt.ok {
			t.Errorf("%s.Validate(%q) = %v", tt.def.Key, tt.value, err)
		}
	}
}

// Each listener gets a config of its own: one caller setting a field (as go-smtp and
// http.Server do) changes nothing for another, and both still serve the manager's certificate.
func TestTLSConfigPerCaller(t *testing.T) {
	m := newTestManager(t, Config{DisableACME: true}, newMemKV(), nil)
	a, b := m.TLSConfig(), m.TLSConfig()
	if a == b {
		t.Fatal("two callers got the same *tls.Config")
	}
	a.NextProtos = []string{"h2"}
	a.MinVersion = tls.VersionTLS13
	if len(b.NextProtos) != 0 || b.MinVersion != tls.VersionTLS12 {
		t.Fatalf("a change to one caller's config reached another: %v %x", b.NextProtos, b.MinVersion)
	}
	ln := listen(t)
	serveLines(t, ln, b, false)
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: testHost, RootCAs: selfSignedRoots(m)})
	if err != nil {
		t.Fatalf("handshake on a cloned config: %v", err)
	}
	c.Close()
}
