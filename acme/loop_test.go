package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// records is a slog handler that keeps what was logged.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) has(level slog.Level, msg string) bool { return r.count(level, msg) > 0 }

func (r *records) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level == level && rec.Message == msg {
			n++
		}
	}
	return n
}

// certFor makes a certificate for name valid from notBefore to notAfter.
func certFor(t *testing.T, name string, isRSA bool, notBefore, notAfter time.Time) *tls.Certificate {
	t.Helper()
	var key crypto.Signer
	var err error
	if isRSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Test CA"}},
		DNSNames:     []string{name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// A certificate 10 days from expiry is logged as an error on every check,
// its renewal is attempted, the failure is logged and shown in Status, and
// the next attempt waits (backoff) instead of hammering the CA.
func TestExpiryAlarmAndFailedRenewal(t *testing.T) {
	rec := &records{}
	r := staticResolver{testHost: {net.ParseIP("127.0.0.1")}}
	ctx := context.Background()
	m, err := New(ctx, Config{Hostname: testHost, Directory: "https://127.0.0.1:1/dir"}, newMemKV(), r, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	s := m.setup()
	now := time.Now()
	for _, isRSA := range []bool{false, true} {
		m.install(s, testHost, isRSA, certFor(t, testHost, isRSA, now.Add(-80*24*time.Hour), now.Add(10*24*time.Hour)))
	}

	m.check(ctx)
	if !rec.has(slog.LevelError, "certificate expires soon") {
		t.Errorf("no error logged for a certificate 10 days from expiry")
	}
	if !rec.has(slog.LevelError, "certificate renewal failed") {
		t.Errorf("no error logged for the failed renewal")
	}
	st := m.Status()
	h := st.Hosts[0]
	if st.Source != SourceACME || st.LastError == "" || h.State != "order failed" ||
		h.NextAttempt.Before(now.Add(retryBase/2)) {
		t.Errorf("status after failed renewal:\n%s\n%+v", st, h)
	}
	orders := m.orders
	m.Refresh() // does not skip the backoff after a failed order
	m.check(ctx)
	if m.orders != orders {
		t.Errorf("retried at once: %d orders, then %d", orders, m.orders)
	}
	if n := rec.count(slog.LevelError, "certificate expires soon"); n != 1 {
		t.Errorf("expiry alarm logged %d times in one hour, want once", n)
	}
	// The old certificate is still served meanwhile.
	if c, err := m.getCertificate(&tls.ClientHelloInfo{ServerName: testHost, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, SupportedCurves: []tls.CurveID{tls.CurveP256}, SupportedVersions: []uint16{tls.VersionTLS13}}); err != nil || c.Leaf.Issuer.Organization[0] != "Test CA" {
		t.Errorf("served %v, %v", c.Leaf.Issuer, err)
	}
}

// Settings changed while running take effect on the next handshake:
// hostname set by the setup wizard, then manual files; open connections
// stay up.
func TestReconfigure(t *testing.T) {
	kv := newMemKV()
	m, err := New(context.Background(), Config{}, kv, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.Hostname != unsetHostname || st.Hosts[0].State != "hostname not set up" {
		t.Errorf("before setup:\n%s", st)
	}
	ln := listen(t)
	serveLines(t, ln, m.TLSConfig(), false)
	first := dialTLS(t, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	echo(t, first, "before setup")
	if err := leafOf(first).VerifyHostname(unsetHostname); err != nil {
		t.Errorf("before setup: %v", err)
	}

	if err := m.Reconfigure(context.Background(), Config{Hostname: testHost, DisableACME: true}); err != nil {
		t.Fatal(err)
	}
	c := dialTLS(t, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err := leafOf(c).VerifyHostname(testHost); err != nil {
		t.Errorf("after setting the hostname: %v", err)
	}

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	manual := certFor(t, testHost, false, time.Now().Add(-time.Hour), time.Now().Add(60*24*time.Hour))
	writePEMPair(t, certFile, keyFile, manual)
	if err := m.Reconfigure(context.Background(), Config{Hostname: testHost, CertFile: certFile, KeyFile: keyFile}); err != nil {
		t.Fatal(err)
	}
	c = dialTLS(t, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if !leafOf(c).Equal(manual.Leaf) {
		t.Errorf("manual certificate not served after Reconfigure")
	}
	echo(t, first, "still open")

	if err := m.Reconfigure(context.Background(), Config{Hostname: testHost, CertFile: certFile}); err == nil {
		t.Errorf("half a manual configuration accepted")
	}
	if st := m.Status(); st.Source != SourceManual {
		t.Errorf("a rejected Reconfigure changed the setup:\n%s", st)
	}
}

// Certificates are kept per ACME directory: switching from staging to
// production does not serve staging's certificate.
func TestDirectoryChangeStartsOver(t *testing.T) {
	kv := newMemKV()
	m := newTestManager(t, Config{Directory: "staging"}, kv, staticResolver{})
	now := time.Now()
	s := m.setup()
	m.install(s, testHost, false, certFor(t, testHost, false, now.Add(-time.Hour), now.Add(80*24*time.Hour)))
	if err := m.Reconfigure(context.Background(), Config{Hostname: testHost, Directory: "production"}); err != nil {
		t.Fatal(err)
	}
	if got := m.setup().live.Load().byName[testHost]; got.ecdsa != nil {
		t.Errorf("staging certificate kept after switching to production")
	}
	if m.setup().cache.prefix == s.cache.prefix {
		t.Errorf("same cache prefix %q for both directories", s.cache.prefix)
	}
	if err := m.Reconfigure(context.Background(), Config{Hostname: testHost, Directory: "production", Email: "a@example.test"}); err != nil {
		t.Fatal(err)
	}
	if m.setup().live.Load() == nil {
		t.Fatal("no live set")
	}
}

// Behind 1:1 NAT the public address is on no interface; an HTTP request to
// it that reaches our own port-80 handler proves it is ours.
func TestReachabilityProbe(t *testing.T) {
	r := staticResolver{testHost: {net.ParseIP("127.0.0.1")}}
	notLocal := func(net.IP) bool { return false }
	serve := func(m *Manager) int {
		ln := listen(t)
		srv := &http.Server{Handler: m.HTTPHandler(nil)}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return portOf(ln)
	}
	ctx := context.Background()

	m := newTestManager(t, Config{IsOwnIP: notLocal, Directory: "https://127.0.0.1:1/dir"}, newMemKV(), r)
	if err := m.resolvesHere(ctx, m.setup(), testHost); err == nil || !strings.Contains(err.Error(), "not served") {
		t.Errorf("without HTTPHandler: %v", err)
	}
	port := serve(m)
	if err := m.Reconfigure(ctx, Config{Hostname: testHost, IsOwnIP: notLocal, HTTPPort: port, Directory: "https://127.0.0.1:1/dir"}); err != nil {
		t.Fatal(err)
	}
	if err := m.resolvesHere(ctx, m.setup(), testHost); err != nil {
		t.Errorf("probe through our own handler failed: %v", err)
	}

	// Another server answers on that address: not ours.
	other := newTestManager(t, Config{DisableACME: true}, newMemKV(), nil)
	otherPort := serve(other)
	if err := m.Reconfigure(ctx, Config{Hostname: testHost, IsOwnIP: notLocal, HTTPPort: otherPort, Directory: "https://127.0.0.1:1/dir"}); err != nil {
		t.Fatal(err)
	}
	if err := m.resolvesHere(ctx, m.setup(), testHost); err == nil {
		t.Errorf("another server's answer taken for ours")
	}
	if err := m.Reconfigure(ctx, Config{Hostname: testHost, IsOwnIP: notLocal, HTTPPort: freePort(t), Directory: "https://127.0.0.1:1/dir"}); err != nil {
		t.Fatal(err)
	}
	if err := m.resolvesHere(ctx, m.setup(), testHost); err == nil {
		t.Errorf("closed port taken for ours")
	}
}
