package acme

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"mailstead/acme/acmetest"
)

// serveHTTPS runs an HTTPS server on ln the way server/ will: http.Server
// with the manager's TLSConfig, ServeTLS adding h2 and http/1.1.
func serveHTTPS(t *testing.T, ln net.Listener, cfg *tls.Config) *http.Server {
	t.Helper()
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "admin page\n") }),
		TLSConfig: cfg,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return srv
}

// httpsGet fetches / from the HTTPS listener at addr, asking for name.
func httpsGet(t *testing.T, addr string, cfg *tls.Config) *http.Response {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   cfg,
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("https://" + cfg.ServerName + "/")
	if err != nil {
		t.Fatalf("HTTPS GET: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Issuance by TLS-ALPN-01 on the HTTPS port, the certificate served on
// every kind of listener without a restart, a restart that reuses it, and
// renewal when it comes within 30 days of expiry.
func TestTLSALPN01IssueRestartRenew(t *testing.T) {
	https := listen(t)      // 443
	imaps := listen(t)      // 993: implicit TLS
	submission := listen(t) // 587: STARTTLS
	noHTTP := freePort(t)   // nothing on 80: only TLS-ALPN-01 can succeed
	ca := startPebble(t, noHTTP, portOf(https), testHost)

	kv := newMemKV()
	m := newTestManager(t, pebbleConfig(ca, portOf(https)), kv, ca)
	httpsSrv := serveHTTPS(t, https, m.TLSConfig())
	serveLines(t, imaps, m.TLSConfig(), false)
	serveLines(t, submission, m.TLSConfig(), true)

	// Before issuance the self-signed certificate is served. This connection
	// stays open across the swap.
	early := dialTLS(t, imaps.Addr().String(), &tls.Config{ServerName: testHost, RootCAs: selfSignedRoots(m)})
	echo(t, early, "before issuance")

	stop := runManager(t, m)
	waitIssued(t, m, testHost)
	echo(t, early, "after issuance") // not dropped
	ordersAfterIssue := ca.Orders()
	if ordersAfterIssue != 2 {
		t.Errorf("%d orders for one ECDSA and one RSA certificate", ordersAfterIssue)
	}

	pebbleTLS := &tls.Config{ServerName: testHost, RootCAs: ca.Roots}
	var issued *tls.Conn
	t.Run("implicit TLS", func(t *testing.T) {
		issued = dialTLS(t, imaps.Addr().String(), pebbleTLS)
		echo(t, issued, "LOGIN")
	})
	t.Run("STARTTLS", func(t *testing.T) {
		c := startTLS(t, submission.Addr().String(), pebbleTLS)
		defer c.Close()
		echo(t, c, "EHLO client.example.test")
	})
	t.Run("HTTPS", func(t *testing.T) {
		resp := httpsGet(t, https.Addr().String(), pebbleTLS)
		if resp.TLS.NegotiatedProtocol != "h2" {
			t.Errorf("ALPN %q, want h2", resp.TLS.NegotiatedProtocol)
		}
	})
	t.Run("no SNI", func(t *testing.T) {
		c := dialTLS(t, imaps.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		echo(t, c, "NOOP")
		verifyChain(t, c, ca.Roots, testHost)
	})
	t.Run("RSA-only client", func(t *testing.T) {
		c := dialTLS(t, imaps.Addr().String(), rsaOnly(pebbleTLS))
		echo(t, c, "NOOP")
		if _, ok := leafOf(c).PublicKey.(*rsa.PublicKey); !ok {
			t.Errorf("RSA-only client got %T", leafOf(c).PublicKey)
		}
	})
	if t.Failed() {
		return
	}
	st := m.Status()
	if st.Source != SourceACME || !strings.Contains(st.Issuer, "Pebble") || st.LastError != "" ||
		time.Until(st.NotAfter) < 80*24*time.Hour || len(st.Hosts[0].KeyTypes) != 2 {
		t.Errorf("status after issuance:\n%s", st)
	}

	// Restart: a new Manager on the same store serves the stored
	// certificates and places no order.
	stop()
	keys := len(kv.keys())
	if st, err := ReadStatus(context.Background(), pebbleConfig(ca, portOf(https)), kv); err != nil ||
		st.Source != SourceACME || st.Hosts[0].State != "stored" || !st.NotAfter.Equal(leafOf(issued).NotAfter) {
		t.Errorf("offline status: %v\n%s", err, st)
	}
	if len(kv.keys()) != keys {
		t.Errorf("ReadStatus wrote to the store")
	}
	m2 := newTestManager(t, pebbleConfig(ca, portOf(https)), kv, ca)
	m2.check(context.Background())
	if n := ca.Orders(); n != ordersAfterIssue || m2.orders != 0 {
		t.Fatalf("restart placed orders: %d at the CA, %d by the manager", n-ordersAfterIssue, m2.orders)
	}
	imaps2 := listen(t)
	serveLines(t, imaps2, m2.TLSConfig(), false)
	again := dialTLS(t, imaps2.Addr().String(), pebbleTLS)
	echo(t, again, "after restart")
	if !leafOf(again).Equal(leafOf(issued)) {
		t.Fatalf("restart serves a different certificate")
	}

	// Renewal: 61 days on, the 90-day certificate is within 30 days of its
	// end. The HTTPS port now belongs to m2.
	httpsSrv.Close()
	https2, err := net.Listen("tcp", https.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	serveHTTPS(t, https2, m2.TLSConfig())
	later := time.Now().Add(61 * 24 * time.Hour)
	m2.now = func() time.Time { return later }
	oldSerial := leafOf(issued).SerialNumber
	oldRSASerial := m2.setup().live.Load().byName[testHost].rsa.Leaf.SerialNumber
	stop2 := runManager(t, m2)
	waitFor(t, "renewal", func() error {
		pair := m2.setup().live.Load().byName[testHost]
		if pair.ecdsa.Leaf.SerialNumber.Cmp(oldSerial) == 0 || pair.rsa.Leaf.SerialNumber.Cmp(oldRSASerial) == 0 {
			return errString(m2.Status().String())
		}
		return nil
	})
	stop2()
	echo(t, again, "after renewal") // an open connection survives renewal
	renewed := dialTLS(t, imaps2.Addr().String(), pebbleTLS)
	echo(t, renewed, "renewed")
	if leafOf(renewed).SerialNumber.Cmp(oldSerial) == 0 {
		t.Errorf("renewed certificate not served")
	}
	if n := ca.Orders(); n < ordersAfterIssue+2 {
		t.Errorf("renewal placed %d orders, want 2", n-ordersAfterIssue)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// Issuance by HTTP-01 on port 80 when TLS-ALPN-01 cannot succeed, for the
// hostname and an extra host whose DNS points here; an extra host without
// DNS gets no order and is served the hostname's certificate.
func TestHTTP01IssueWithExtraHosts(t *testing.T) {
	plain := listen(t)   // 80
	imaps := listen(t)   // 993
	noTLS := freePort(t) // nothing on 443: only HTTP-01 can succeed
	ca := startPebble(t, portOf(plain), noTLS, testHost, "mta-sts.example.test")

	cfg := pebbleConfig(ca, noTLS)
	cfg.ExtraHosts = func(context.Context) ([]string, error) {
		return DomainHosts([]string{"example.test"}), nil
	}
	m := newTestManager(t, cfg, newMemKV(), ca)
	var challenges atomic.Int32
	h := m.HTTPHandler(nil)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				challenges.Add(1)
			}
			h.ServeHTTP(w, r)
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(plain)
	t.Cleanup(func() { srv.Close() })
	serveLines(t, imaps, m.TLSConfig(), false)

	runManager(t, m)
	waitIssued(t, m, testHost)
	waitIssued(t, m, "mta-sts.example.test")
	if challenges.Load() == 0 {
		t.Errorf("no HTTP-01 challenge was fetched")
	}

	for _, name := range []string{testHost, "mta-sts.example.test"} {
		c := dialTLS(t, imaps.Addr().String(), &tls.Config{ServerName: name, RootCAs: ca.Roots})
		echo(t, c, "NOOP")
		if got := leafOf(c).DNSNames; len(got) != 1 || got[0] != name {
			t.Errorf("SNI %s got certificate for %v", name, got)
		}
	}
	// autoconfig.example.test has no DNS: the hostname's certificate.
	c := dialTLS(t, imaps.Addr().String(), &tls.Config{ServerName: "autoconfig.example.test", InsecureSkipVerify: true})
	verifyChain(t, c, ca.Roots, testHost)
	for _, h := range m.Status().Hosts {
		if h.Name == "autoconfig.example.test" && (h.State != "waiting for DNS" || h.Source != SourceSelfSigned) {
			t.Errorf("autoconfig status: %+v", h)
		}
	}

	// Everything else on port 80 is redirected to HTTPS.
	req, _ := http.NewRequest("GET", "http://"+plain.Addr().String()+"/setup?x=1", nil)
	req.Host = testHost
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + testHost + ":" + strconv.Itoa(noTLS) + "/setup?x=1"; resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
		t.Errorf("redirect: %s %q, want %q", resp.Status, resp.Header.Get("Location"), want)
	}
}

// When the CA cannot validate either challenge, Status says why in the CA's
// words, and the next attempt waits.
func TestFailedValidationReported(t *testing.T) {
	noHTTP, noTLS := freePort(t), freePort(t)
	ca := startPebble(t, noHTTP, noTLS, testHost)
	m := newTestManager(t, pebbleConfig(ca, noTLS), newMemKV(), ca)
	m.HTTPHandler(nil) // HTTP-01 offered too, but nothing listens on port 80
	m.check(context.Background())

	h := m.Status().Hosts[0]
	if h.State != "order failed" || !strings.Contains(h.LastError, "tls-alpn-01: ") || !strings.Contains(h.LastError, "http-01: ") {
		t.Fatalf("status: %+v", h)
	}
	t.Logf("reported: %s", h.LastError)
	if !h.NextAttempt.After(time.Now().Add(retryBase / 2)) {
		t.Errorf("next attempt %s, want about %s from now", h.NextAttempt, retryBase)
	}
	if st := m.Status(); st.Source != SourceSelfSigned {
		t.Errorf("source %s", st.Source)
	}
}

// acmetest can use a DNS server the test already runs (as server tests do
// with their fake zone) instead of its own challtestsrv.
func TestPebbleWithOutsideDNS(t *testing.T) {
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, q *mdns.Msg) {
		r := new(mdns.Msg)
		r.SetReply(q)
		r.Authoritative = true
		if len(q.Question) == 1 && q.Question[0].Qtype == mdns.TypeA && strings.EqualFold(q.Question[0].Name, testHost+".") {
			r.Answer = append(r.Answer, &mdns.A{
				Hdr: mdns.RR_Header{Name: q.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60},
				A:   net.ParseIP("127.0.0.1"),
			})
		}
		w.WriteMsg(r)
	})
	// Pebble asks over TCP, the resolver over UDP: one port for both.
	var pc net.PacketConn
	var tl net.Listener
	for pc == nil {
		p, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if l, err := net.Listen("tcp", p.LocalAddr().String()); err == nil {
			pc, tl = p, l
		} else {
			p.Close()
		}
	}
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: tl, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}

	https := listen(t)
	ca := acmetest.Start(t, acmetest.Options{HTTPPort: freePort(t), TLSPort: portOf(https), DNSServer: pc.LocalAddr().String()})
	m := newTestManager(t, pebbleConfig(ca, portOf(https)), newMemKV(), ca)
	serveHTTPS(t, https, m.TLSConfig())
	runManager(t, m)
	waitIssued(t, m, testHost)
	resp := httpsGet(t, https.Addr().String(), &tls.Config{ServerName: testHost, RootCAs: ca.Roots})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HTTPS: %s", resp.Status)
	}
}
