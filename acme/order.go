package acme

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

const (
	orderTimeout = 5 * time.Minute
	// retryBase is the first wait after a failed order; it doubles per
	// failure up to retryMax. Let's Encrypt allows 5 failed validations per
	// hostname and hour, which this schedule never exceeds.
	retryBase = 5 * time.Minute
	retryMax  = 12 * time.Hour
	// dnsBase and dnsMax space the checks of a name that does not resolve
	// to this server yet; Refresh checks at once.
	dnsBase = time.Minute
	dnsMax  = time.Hour
	// expiryAlarm: closer than this to expiry, every check logs an error.
	expiryAlarm = 14 * 24 * time.Hour
	minWait     = time.Second
)

// Run is the background loop: it orders certificates for the hostname and
// the extra hosts once their names resolve to this server, renews them
// RenewBefore their expiry, retries failures with backoff, reloads manual
// files and logs loudly when a certificate is close to expiry. It returns nil
// when ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	for {
		wait := m.check(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-m.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// check does one pass and returns how long to sleep.
func (m *Manager) check(ctx context.Context) time.Duration {
	s := m.setup()
	force := m.force.Swap(false)
	switch {
	case s.manual != nil:
		cert, _ := s.manual.get()
		if cert != nil {
			m.alarmExpiry(s.hostname, SourceManual, cert.Leaf)
		}
		return s.interval
	case !s.acme:
		return s.interval
	}

	hosts := m.allowedHosts(ctx, s)
	m.loadCached(ctx, s, hosts)
	wait := s.interval
	for _, host := range hosts {
		if ctx.Err() != nil || m.setup() != s {
			return minWait // stopping, or settings changed: start over
		}
		wait = min(wait, m.ensureHost(ctx, s, host, force))
	}
	return max(wait, minWait)
}

// allowedHosts returns the hostname and the extra hosts, and makes them the
// set of names challenges are answered for.
func (m *Manager) allowedHosts(ctx context.Context, s *setup) []string {
	hosts := []string{s.hostname}
	if s.cfg.ExtraHosts != nil {
		extra, err := s.cfg.ExtraHosts(ctx)
		if err != nil {
			m.log.Error("listing extra certificate hosts", "err", err)
			// Keep the names we knew rather than forgetting them.
			m.mu.Lock()
			for h := range m.hosts {
				extra = append(extra, h)
			}
			m.mu.Unlock()
		}
		for _, h := range extra {
			if h = normalizeName(h); h != "" && !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	m.mu.Lock()
	next := make(map[string]*hostState, len(hosts))
	for _, h := range hosts {
		if st := m.hosts[h]; st != nil {
			next[h] = st
		} else {
			next[h] = &hostState{state: "not checked yet"}
		}
	}
	m.hosts = next
	m.mu.Unlock()
	return hosts
}

// renewAt is when a certificate is due for renewal: RenewBefore its expiry,
// or after two thirds of its lifetime when RenewBefore is not shorter than
// the lifetime (short-lived certificates).
func (s *setup) renewAt(leaf *x509.Certificate) time.Time {
	before := s.renewBefore
	if life := leaf.NotAfter.Sub(leaf.NotBefore); before >= life {
		before = life / 3
	}
	return leaf.NotAfter.Add(-before)
}

// keyTypes returns the certificates host gets: ECDSA for every name, and RSA
// too for the mail hostname, whose clients include old mail programs. The
// extra hosts are fetched by MTA-STS senders and autoconfig clients, which
// all do ECDSA; skipping RSA there halves the orders.
func (s *setup) keyTypes(host string) []bool {
	if host == s.hostname {
		return []bool{false, true}
	}
	return []bool{false}
}

// ensureHost orders or renews what host lacks, if its turn has come, and
// returns how long until it needs attention again. force skips the wait of
// a name that did not resolve here (Refresh), not the backoff after a
// failed order.
func (m *Manager) ensureHost(ctx context.Context, s *setup, host string, force bool) time.Duration {
	now := m.now()
	pair := s.live.Load().byName[host]
	var due []bool // key types to order: false = ECDSA, true = RSA
	next := now.Add(s.interval)
	for _, isRSA := range s.keyTypes(host) {
		c := pair.ecdsa
		if isRSA {
			c = pair.rsa
		}
		if c == nil {
			due = append(due, isRSA)
			continue
		}
		m.alarmExpiry(host, SourceACME, c.Leaf)
		at := s.renewAt(c.Leaf)
		if !now.Before(at) {
			due = append(due, isRSA)
		} else if at.Before(next) {
			next = at
		}
	}

	m.mu.Lock()
	st := m.hosts[host]
	if len(due) == 0 {
		st.state, st.detail, st.next = "valid", "", time.Time{}
		m.mu.Unlock()
		return next.Sub(now)
	}
	if now.Before(st.next) && !(force && st.state == "waiting for DNS") {
		wait := st.next.Sub(now)
		m.mu.Unlock()
		return wait
	}
	m.mu.Unlock()

	if err := m.resolvesHere(ctx, s, host); err != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		if st.state != "waiting for DNS" && host == s.hostname {
			m.log.Warn("not ordering a certificate yet", "name", host, "reason", err)
		}
		st.state, st.detail = "waiting for DNS", err.Error()
		wait := dnsBase
		if st.dnsSince.IsZero() {
			st.dnsSince = now
		} else {
			wait = min(dnsMax, max(dnsBase, now.Sub(st.dnsSince)/4))
		}
		st.next = now.Add(wait)
		return wait
	}

	for _, isRSA := range due {
		m.mu.Lock()
		st.state, st.detail, st.dnsSince = "ordering", "", time.Time{}
		m.mu.Unlock()
		err := m.order(ctx, s, host, isRSA)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return minWait
		}
		m.mu.Lock()
		st.failures++
		wait := min(retryMax, m.retryBase<<min(st.failures-1, 16))
		st.state, st.lastErr, st.lastErrAt, st.next = "order failed", err, m.now(), m.now().Add(wait)
		m.mu.Unlock()
		what := "certificate order failed"
		if (isRSA && pair.rsa != nil) || (!isRSA && pair.ecdsa != nil) {
			what = "certificate renewal failed"
		}
		m.log.Error(what, "name", host, "key", keyType(isRSA), "err", err, "retry_in", wait)
		return wait
	}
	m.mu.Lock()
	st.state, st.failures, st.lastErr, st.lastErrAt, st.next = "valid", 0, nil, time.Time{}, time.Time{}
	m.mu.Unlock()
	// Look again soon: a certificate whose lifetime is shorter than the
	// check interval is renewed in time.
	return minWait
}

// alarmExpiry logs an error, at most once an hour per name, while a served
// certificate is within expiryAlarm of its end.
func (m *Manager) alarmExpiry(host string, src Source, leaf *x509.Certificate) {
	now := m.now()
	left := leaf.NotAfter.Sub(now)
	if left >= expiryAlarm {
		return
	}
	m.mu.Lock()
	last, ok := m.alarmed[host]
	if ok && now.Sub(last) < time.Hour && !now.Before(last) {
		m.mu.Unlock()
		return
	}
	m.alarmed[host] = now
	m.mu.Unlock()
	m.log.Error("certificate expires soon", "name", host, "source", src,
		"not_after", leaf.NotAfter, "days_left", int(left.Hours()/24))
}

// resolvesHere checks that host resolves, and only to addresses of this
// server, before anything is asked of the CA: an order for a name that
// points elsewhere fails validation and burns the CA's rate limits.
//
// An address is ours when Config.IsOwnIP says so (by default: it is on a
// local interface) or, behind 1:1 NAT as on many clouds, when an HTTP
// request to it on port 80 reaches this Manager (probeHTTP).
func (m *Manager) resolvesHere(ctx context.Context, s *setup, host string) error {
	if m.resolver == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ips, err := m.resolver.LookupIP(ctx, host)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", host, err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("%s has no A or AAAA record", host)
	}
	own := s.cfg.IsOwnIP
	if own == nil {
		own = isLocalIP
	}
	for _, ip := range ips {
		if own(ip) {
			continue
		}
		if err := m.probeHTTP(ctx, s, host, ip); err != nil {
			return fmt.Errorf("%s resolves to %s, which is not an address of this server (%v)", host, ip, err)
		}
	}
	return nil
}

// probeHTTP asks http://ip:80/.well-known/acme-challenge/<random> for host
// and expects the answer our HTTPHandler gives for that token: the same
// path the CA's HTTP-01 validation will take.
func (m *Manager) probeHTTP(ctx context.Context, s *setup, host string, ip net.IP) error {
	if !m.http01.Load() {
		return errors.New("port 80 is not served, so it cannot be probed")
	}
	token := rand.Text()
	key := token + "+http-01" // autocert's cache key of an HTTP-01 token
	if err := s.cache.Put(ctx, key, []byte(token)); err != nil {
		return err
	}
	defer s.cache.Delete(context.WithoutCancel(ctx), key)

	port := s.cfg.HTTPPort
	if port == 0 {
		port = 80
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(port)) + "/.well-known/acme-challenge/" + token
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Host = host
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe on port %d: %w", port, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || string(body) != token {
		return fmt.Errorf("probe on port %d was answered by someone else (%s)", port, resp.Status)
	}
	return nil
}

// isLocalIP reports whether ip is assigned to a local network interface.
func isLocalIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// order obtains one certificate for host through a fresh autocert.Manager
// that shares the cache: its challenge responses are answered by m.solver
// (TLSConfig, HTTPHandler), and the certificate it stores is installed by
// the cache's onPut hook. A fresh Manager is used because a long-lived one
// would keep returning the certificate it holds instead of renewing on our
// schedule.
func (m *Manager) order(ctx context.Context, s *setup, host string, isRSA bool) error {
	m.mu.Lock()
	m.orders++
	m.mu.Unlock()

	// The transport stops with the loop, not with this order's timeout, so
	// autocert can still deactivate pending authorizations after a failure.
	tr := &stopTransport{base: http.DefaultTransport, stop: ctx}
	ctx, cancel := context.WithTimeout(ctx, orderTimeout)
	defer cancel()
	hc := &http.Client{Transport: tr}
	if c := s.cfg.HTTPClient; c != nil {
		if c.Transport != nil {
			tr.base = c.Transport
		}
		hc.Timeout, hc.Jar, hc.CheckRedirect = c.Timeout, c.Jar, c.CheckRedirect
	}
	om := &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Cache: orderCache{kvCache: s.cache, due: func(key string, data []byte) bool {
			cert, err := m.parseCachedCert(key, data)
			return err != nil || !m.now().Before(s.renewAt(cert.Leaf))
		}},
		HostPolicy: autocert.HostWhitelist(host),
		// autocert starts a renewal timer of its own after issuing; we
		// renew on our schedule, so push its timer to the last second and
		// close its HTTP client below so it can never order.
		RenewBefore: time.Second,
		Client:      &acme.Client{DirectoryURL: s.directory, HTTPClient: hc, UserAgent: "mailstead"},
		Email:       s.cfg.Email,
	}
	if m.http01.Load() {
		om.HTTPHandler(nil) // enables HTTP-01 after TLS-ALPN-01; the handler itself is m.solver's
	}
	m.log.Info("ordering certificate", "name", host, "key", keyType(isRSA), "directory", s.directory)

	type result struct {
		cert *tls.Certificate
		err  error
	}
	// autocert's GetCertificate runs under its own context; stopTransport
	// ends its requests when ctx ends, and we stop waiting.
	done := make(chan result, 1)
	go func() {
		c, err := om.GetCertificate(orderHello(host, isRSA))
		done <- result{c, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return fmt.Errorf("ordering %s: %w", host, ctx.Err())
	}
	if r.err != nil {
		if p := tr.problem(); p != "" {
			return fmt.Errorf("ordering %s (%s): %w; the CA's validation said: %s", host, keyType(isRSA), r.err, p)
		}
		return fmt.Errorf("ordering %s (%s): %w", host, keyType(isRSA), r.err)
	}
	tr.close()
	// Usually installed already by the cache hook; this covers a valid
	// certificate stored meanwhile by another process.
	if err := m.checkCert(host, isRSA, r.cert); err != nil {
		return fmt.Errorf("ordering %s: %w", host, err)
	}
	m.install(s, host, isRSA, r.cert)
	return nil
}

// orderHello is the ClientHello autocert is asked with: it picks the key
// type from the signature schemes and curves a client supports.
func orderHello(host string, isRSA bool) *tls.ClientHelloInfo {
	if isRSA {
		return &tls.ClientHelloInfo{
			ServerName:       host,
			SignatureSchemes: []tls.SignatureScheme{tls.PKCS1WithSHA256},
			CipherSuites:     []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		}
	}
	return &tls.ClientHelloInfo{
		ServerName:       host,
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256},
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
}

// stopTransport fails requests once stop is done or close was called, so an
// autocert.Manager left behind by an order can do nothing more. It also
// keeps why the CA found challenges invalid: autocert moves on to the next
// challenge type and finally reports only "no viable challenge type found",
// while the user needs to read "connection refused on port 80".
type stopTransport struct {
	base   http.RoundTripper
	stop   context.Context
	closed atomic.Bool

	mu       sync.Mutex
	problems []string // guarded by mu
}

var errTransportClosed = errors.New("acme: order finished")

func (t *stopTransport) close() { t.closed.Store(true) }

func (t *stopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.closed.Load() {
		return nil, errTransportClosed
	}
	if err := t.stop.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	stopAfter := context.AfterFunc(t.stop, cancel)
	defer stopAfter()
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	// ACME responses are small; read them here so the request's context
	// can end with this call.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.notice(body)
	}
	return resp, nil
}

// notice records the challenge errors of an invalid authorization
// (RFC 8555 section 7.1.4: the challenge's "error" problem document).
func (t *stopTransport) notice(body []byte) {
	var z struct {
		Status     string `json:"status"`
		Identifier struct {
			Value string `json:"value"`
		} `json:"identifier"`
		Challenges []struct {
			Type  string `json:"type"`
			Error *struct {
				Detail string `json:"detail"`
			} `json:"error"`
		} `json:"challenges"`
	}
	if json.Unmarshal(body, &z) != nil || z.Status != "invalid" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range z.Challenges {
		if c.Error == nil {
			continue
		}
		p := c.Type + ": " + c.Error.Detail
		if !slices.Contains(t.problems, p) {
			t.problems = append(t.problems, p)
		}
	}
}

// problem returns the recorded challenge errors, "" if none.
func (t *stopTransport) problem() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.problems, "; ")
}
