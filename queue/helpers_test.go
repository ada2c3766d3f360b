package queue

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"mailstead/mailtest/storetest"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	mdns "github.com/miekg/dns"

	"mailstead/dns"
	"mailstead/mailtest/testkit"
	"mailstead/store"
)

// testCA issues certificates that the queue under test trusts.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "queue test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a TLS certificate for names signed by the CA.
func (ca *testCA) issue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// farMsg is one message a fake far-side server accepted.
type farMsg struct {
	from     string
	mailOpts gosmtp.MailOptions
	rcptOpts []gosmtp.RcptOptions
	rcpts    []string
	data     []byte
	tls      bool
	helo     string
}

// farSide is a remote MX: a go-smtp server on a loopback address whose replies the test sets.
type farSide struct {
	srv  *gosmtp.Server
	addr string

	mu   sync.Mutex
	msgs []farMsg
	// rcptErr, if set, answers each RCPT; dataErr answers the end of DATA.
	rcptErr func(rcpt string) error
	dataErr func() error
	mails   int // MAIL commands seen
	conns   int // connections accepted
	users   map[string]string
	authed  []string // users that logged in
}

// startFarSide listens on ip:port. cert, if non-nil, enables STARTTLS.
func startFarSide(t testing.TB, ip string, port int, cert *tls.Certificate) *farSide {
	return startFarSideOpts(t, ip, port, farOpts{cert: cert})
}

type farOpts struct {
	cert       *tls.Certificate
	implicit   bool              // TLS from the first byte (465)
	users      map[string]string // AUTH PLAIN accounts; MAIL needs AUTH when set
	noSMTPUTF8 bool
	dsn        bool // offer DSN (RFC 3461)
}

func startFarSideOpts(t testing.TB, ip string, port int, o farOpts) *farSide {
	t.Helper()
	f := &farSide{users: o.users}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &farSession{f: f, c: c}, nil
	}))
	srv.Domain = "far.test"
	srv.EnableSMTPUTF8 = !o.noSMTPUTF8
	srv.EnableREQUIRETLS = true
	srv.EnableDSN = o.dsn
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = discardLogger{}
	if o.cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*o.cert}}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("far side: %v", err)
	}
	f.srv, f.addr = srv, ln.Addr().String()
	ln = &countingListener{Listener: ln, f: f}
	if o.implicit {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *farSide) messages() []farMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]farMsg(nil), f.msgs...)
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

type farSession struct {
	f        *farSide
	c        *gosmtp.Conn
	from     string
	mailOpts gosmtp.MailOptions
	rcptOpts []gosmtp.RcptOptions
	rcpts    []string
	user     string
}

func (s *farSession) Reset() {
	s.from, s.rcpts, s.rcptOpts, s.mailOpts = "", nil, nil, gosmtp.MailOptions{}
}
func (s *farSession) Logout() error { return nil }
func (s *farSession) AuthMechanisms() []string {
	if s.f.users == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *farSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		s.f.mu.Lock()
		defer s.f.mu.Unlock()
		if pw, ok := s.f.users[user]; !ok || pw != pass {
			return gosmtp.ErrAuthFailed
		}
		s.user = user
		s.f.authed = append(s.f.authed, user)
		return nil
	}), nil
}

func (s *farSession) Mail(from string, opts *gosmtp.MailOptions) error {
	if opts != nil {
		s.mailOpts = *opts
	}
	if s.f.users != nil && s.user == "" {
		return gosmtp.ErrAuthRequired
	}
	s.f.mu.Lock()
	s.f.mails++
	s.f.mu.Unlock()
	s.from = from
	return nil
}
func (s *farSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	s.f.mu.Lock()
	fn := s.f.rcptErr
	s.f.mu.Unlock()
	if fn != nil {
		if err := fn(to); err != nil {
			return err
		}
	}
	s.rcpts = append(s.rcpts, to)
	if opts != nil {
		s.rcptOpts = append(s.rcptOpts, *opts)
	}
	return nil
}
func (s *farSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.f.dataErr != nil {
		if err := s.f.dataErr(); err != nil {
			return err
		}
	}
	_, isTLS := s.c.TLSConnectionState()
	s.f.msgs = append(s.f.msgs, farMsg{from: s.from, rcpts: append([]string(nil), s.rcpts...), data: b, tls: isTLS, helo: s.c.Hostname(),
		mailOpts: s.mailOpts, rcptOpts: append([]gosmtp.RcptOptions(nil), s.rcptOpts...)})
	return nil
}

// env is a sending mail server's queue with its store, a fake DNS zone, and a port offset that
// the fake far sides listen on (25 + offset).
type env struct {
	t      *testing.T
	st     *store.Store
	zone   *fakeZone
	ca     *testCA
	offset int
	q      *Queue
	alice  store.Account
	logs   *testkit.LogBuffer
	cancel context.CancelFunc
}

// freeOffset finds a port offset where 25+offset is free on every ip given.
func freeOffset(t testing.TB, ips ...string) int {
	t.Helper()
	for range 50 {
		off, _ := rand.Int(rand.Reader, big.NewInt(30000))
		offset := 20000 + int(off.Int64())
		ok := true
		for _, ip := range ips {
			for _, p := range []int{25, 443} {
				ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p+offset)))
				if err != nil {
					ok = false
					break
				}
				ln.Close()
			}
		}
		if ok {
			return offset
		}
	}
	t.Fatal("no free port offset")
	return 0
}

// newEnv opens a store with a.test and alice, and a queue with a short retry schedule. Settings
// may be changed before start.
func newEnv(t *testing.T, farIPs ...string) *env {
	t.Helper()
	st := storetest.Open(t, "a.test")
	alice := storetest.Account(t, st, "alice@a.test", "pw")
	ctx := context.Background()
	for k, v := range map[string]string{"queue.retry_initial": "1s", "queue.retry_max": "2s", "queue.timeout": "10s"} {
		if err := st.SetSetting(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, st: st, zone: newFakeZone(t), ca: newTestCA(t), alice: alice, logs: &testkit.LogBuffer{}}
	e.offset = freeOffset(t, farIPs...)
	return e
}

// start builds and runs the queue.
func (e *env) start(mod ...func(*Config)) {
	e.t.Helper()
	cfg := Config{
		Store: e.st, Resolver: e.zone,
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hostname: func() string { return "mail.a.test" }, PortOffset: e.offset, RootCAs: e.ca.pool,
	}
	for _, m := range mod {
		m(&cfg)
	}
	q, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.q = q
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	e.t.Cleanup(func() {
		cancel()
		<-done
		if e.t.Failed() {
			e.t.Logf("queue log:\n%s", e.logs.String())
		}
	})
}

// submit queues msg from alice to rcpts, as the submission path does.
func (e *env) submit(from string, msg string, rcpts ...string) {
	e.t.Helper()
	d := &store.Delivery{MailFrom: from, Data: []byte(strings.ReplaceAll(msg, "\n", "\r\n"))}
	for _, r := range rcpts {
		d.Remote = append(d.Remote, store.RemoteRecipient{Address: r})
	}
	if _, err := e.st.Deliver(context.Background(), d); err != nil {
		e.t.Fatal(err)
	}
	if e.q != nil {
		e.q.Kick()
	}
}

// submitDSN queues msg from alice to one recipient with DSN parameters.
func (e *env) submitDSN(msg, rcpt string, dsn store.DSN) {
	e.t.Helper()
	d := &store.Delivery{MailFrom: "alice@a.test", Data: []byte(strings.ReplaceAll(msg, "\n", "\r\n")),
		Remote: []store.RemoteRecipient{{Address: rcpt, DSN: dsn}}}
	if _, err := e.st.Deliver(context.Background(), d); err != nil {
		e.t.Fatal(err)
	}
	e.q.Kick()
}

// idle reports whether the queue is empty and no delivery is running (every outcome, and every
// report it causes, is recorded).
func (e *env) idle() bool { return e.quiet() && e.queueLen() == 0 }

// quiet reports whether no delivery is running: once an attempt's effect is seen, its outcome
// has been recorded too.
func (e *env) quiet() bool {
	e.q.mu.Lock()
	defer e.q.mu.Unlock()
	return e.q.running == 0
}

// waitFor polls cond until it holds or the test times out.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) queueLen() int {
	l, err := e.st.QueueList(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return len(l)
}

// inbox returns the messages in alice's INBOX.
func (e *env) inbox() [][]byte {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.st.MailboxByName(ctx, e.alice.ID, "INBOX")
	if err != nil {
		e.t.Fatal(err)
	}
	ms, err := e.st.Messages(ctx, mb.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]byte
	for _, m := range ms {
		b, err := e.st.MessageData(ctx, m.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

const testMsg = `From: Alice <alice@a.test>
To: bob@b.test
Subject: hello
Message-ID: <m1@a.test>
Date: Sun, 29 Nov 2026 10:00:00 +0000

Hi Bob.
`

func deliveryOf(from, msg string, rcpts ...string) *store.Delivery {
	d := &store.Delivery{MailFrom: from, Data: []byte(strings.ReplaceAll(msg, "\n", "\r\n"))}
	for _, r := range rcpts {
		d.Remote = append(d.Remote, store.RemoteRecipient{Address: r})
	}
	return d
}

// fakeZone is an in-memory Resolver filled with zone-file lines. The queue's own tests cannot use
// mailtest's DNS server: mailtest imports server, which imports this package.
type fakeZone struct {
	t  testing.TB
	mu sync.Mutex
	rr map[string][]mdns.RR
}

func newFakeZone(t testing.TB) *fakeZone { return &fakeZone{t: t, rr: map[string][]mdns.RR{}} }

func (z *fakeZone) Add(lines ...string) {
	z.t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, l := range lines {
		rr, err := mdns.NewRR(l)
		if err != nil {
			z.t.Fatalf("zone: %q: %v", l, err)
		}
		k := strings.ToLower(rr.Header().Name)
		z.rr[k] = append(z.rr[k], rr)
	}
}

// lookup returns the records of type qtype at name, or the error the dns package would give.
func (z *fakeZone) lookup(name string, qtype uint16) ([]mdns.RR, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	k := strings.ToLower(mdns.Fqdn(name))
	exists := false
	for n := range z.rr {
		if n == k || strings.HasSuffix(n, "."+k) {
			exists = true
		}
	}
	if !exists {
		return nil, fmt.Errorf("%s: %w", name, dns.ErrNotFound)
	}
	var out []mdns.RR
	for _, rr := range z.rr[k] {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w (%w)", name, dns.ErrNoRecords, dns.ErrNotFound)
	}
	return out, nil
}

func (z *fakeZone) LookupMX(_ context.Context, domain string) ([]*net.MX, error) {
	rrs, err := z.lookup(domain, mdns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []*net.MX
	for _, rr := range rrs {
		mx := rr.(*mdns.MX)
		if mx.Mx == "." {
			return nil, fmt.Errorf("%s: %w", domain, dns.ErrNullMX)
		}
		out = append(out, &net.MX{Host: strings.TrimSuffix(mx.Mx, "."), Pref: mx.Preference})
	}
	return out, nil
}

func (z *fakeZone) LookupIP(_ context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	rrs, err := z.lookup(host, mdns.TypeA)
	if err != nil {
		return nil, err
	}
	var out []net.IP
	for _, rr := range rrs {
		out = append(out, rr.(*mdns.A).A)
	}
	return out, nil
}

func (z *fakeZone) LookupTXT(_ context.Context, name string) ([]string, error) {
	rrs, err := z.lookup(name, mdns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*mdns.TXT).Txt, ""))
	}
	return out, nil
}

// rawFar is a minimal SMTP server with a fixed EHLO reply, for servers go-smtp cannot imitate
// (no 8BITMIME, no EHLO at all). It accepts every command and records them.
type rawFar struct {
	mu   sync.Mutex
	cmds []string
	msgs [][]byte
	// pipelined: the commands after MAIL were already waiting when MAIL was read (RFC 2920).
	pipelined bool
	// hangUpAfterData closes the connection after each message, as a server that times out
	// idle sessions would.
	hangUpAfterData bool
	conns           int
}

// startRawFar listens on ip:port. ehlo lists the extension lines of the EHLO reply; nil answers
// EHLO with 502 so that the client must fall back to HELO.
func startRawFar(t testing.TB, ip string, port int, ehlo []string) *rawFar {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &rawFar{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c, ehlo)
		}
	}()
	return f
}

func (f *rawFar) serve(c net.Conn, ehlo []string) {
	defer c.Close()
	f.mu.Lock()
	f.conns++
	f.mu.Unlock()
	r := bufio.NewReader(c)
	say := func(s string) { c.Write([]byte(s + "\r\n")) }
	say("220 raw.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, line)
		f.mu.Unlock()
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		if verb == "MAIL" && r.Buffered() > 0 {
			f.mu.Lock()
			f.pipelined = true
			f.mu.Unlock()
		}
		switch verb {
		case "EHLO":
			if ehlo == nil {
				say("502 5.5.1 EHLO not implemented")
				continue
			}
			lines := append([]string{"raw.test"}, ehlo...)
			for i, e := range lines {
				if i == len(lines)-1 {
					say("250 " + e)
				} else {
					say("250-" + e)
				}
			}
		case "HELO", "MAIL", "RCPT", "RSET", "NOOP":
			say("250 ok")
		case "DATA":
			say("354 go ahead")
			var data []byte
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data = append(data, l...)
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, data)
			f.mu.Unlock()
			say("250 2.0.0 ok")
			f.mu.Lock()
			hangUp := f.hangUpAfterData
			f.mu.Unlock()
			if hangUp {
				return
			}
		case "QUIT":
			say("221 bye")
			return
		default:
			say("500 5.5.2 what?")
		}
	}
}

func (f *rawFar) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

type countingListener struct {
	net.Listener
	f *farSide
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.f.mu.Lock()
		l.f.conns++
		l.f.mu.Unlock()
	}
	return c, err
}
