// Package server is the appliance: it opens the store, builds the one TLS source, starts every
// listener with its limits, and stops them in order. Protocol packages meet only here; this
// package holds no protocol logic of its own.
package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailstead/acme"
	"mailstead/admin"
	"mailstead/connlimit"
	"mailstead/dns"
	"mailstead/junk"
	"mailstead/loginlimit"
	"mailstead/maillog"
	"mailstead/manage"
	"mailstead/queue"
	"mailstead/smtp"
	"mailstead/store"
)

// Options are what must be known before the database is open.
type Options struct {
	DataDir    string
	Dev        bool   // loopback, port offset 10000, self-signed TLS, a ready account
	Bind       string // IP to listen on; "" means all addresses (127.0.0.1 in dev mode)
	PortOffset int    // added to every listening port and to the remote SMTP port
	DNS        string // HOST:PORT that every DNS query goes to; "" means the system's
	Logger     *slog.Logger
	Out        io.Writer // where the setup URL or dev credentials are printed
	Version    string    // the binary's version (the admin overview shows it)
	// InterfaceIPs lists this machine's public interface addresses (the setup URLs and DNS
	// records use them when admin.public_ips is not set); nil means admin.InterfaceIPs.
	InterfaceIPs func() []net.IP

	// EphemeralPorts makes every listener take a free port (tests); Addr tells which.
	EphemeralPorts bool
	// ShutdownGrace bounds how long transactions in flight may take to finish.
	ShutdownGrace time.Duration
	// ACMEClient talks to the ACME directory; nil means one on the system roots. Tests pass a
	// client that trusts Pebble (the system pool is loaded once per process, so SSL_CERT_FILE
	// cannot be set by a test in-process).
	ACMEClient *http.Client
}

// Server is a running mailstead.
type Server struct {
	opts     Options
	log      *slog.Logger
	store    *store.Store
	resolver *dns.Resolver // asks the wire every time: live DNS checks, ACME, the queue
	certs    *acme.Manager
	ops      *manage.Ops        // the operations layer; with the certificate manager once started
	changes  chan settingChange // changed settings for the applier (settings.go)
	// applierDone is closed when the applier stops (shutdown), so no one waits for it then.
	applierDone chan struct{}
	// hostname is the mail hostname now (the setup wizard and settings change it while running;
	// every greeting, EHLO and Received: line reads it).
	hostname atomic.Pointer[string]
	// What applySetting hands changed settings to (settings.go).
	smtpServers []*smtp.Server // under mu
	queue       atomic.Pointer[queue.Queue]
	mx          atomic.Pointer[smtp.Server]

	mu         sync.Mutex
	addrs      map[int]string // standard port → actual listening address
	stoppers   []func(context.Context) error
	wg         sync.WaitGroup
	cancelBg   context.CancelFunc
	control    net.Listener
	setupToken string      // the setup wizard's token while no domain exists
	devPending bool        // dev mode on an empty data directory: create the dev account once listening
	stopping   atomic.Bool // Shutdown has begun; read under mu where stoppers are registered
	metrics    *metrics    // counts log lines and accepts; serves /metrics (metrics.go)

	spoolOnce sync.Once
	spool     *smtp.Spool // DATA and BDAT of every SMTP listener (inbound.go)
	spoolErr  error

	junk        *junk.Filter  // consulted at MX delivery
	junkLearner *junk.Learner // trains from store events (junk.go)
	// logins is the one failed-login budget of every protocol and the web, so guesses spread
	// over ports and protocols add up per account and per client address.
	logins *loginlimit.Limiter
	// mailResolver is resolver through a short-lived cache of answers (dns.Cache), for the
	// checks of port 25 (SPF, DKIM, DMARC, iprev), which ask the same questions for every
	// message of a sender.
	mailResolver *dns.Resolver
	// maillog writes the stable mail lines and passes them, typed, to the metrics and the admin
	// page's recent events (mailSubscribers, mailevents.go).
	maillog    *maillog.Log
	mailEvents chan<- store.MailEvent

	profiler profiler // pprof profiles on request through the control socket (profile.go)
}

// New opens the data directory and prepares the server without listening yet.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.InterfaceIPs == nil {
		opts.InterfaceIPs = admin.InterfaceIPs
	}
	if opts.Dev {
		if opts.Bind == "" {
			opts.Bind = "127.0.0.1"
		}
		if opts.PortOffset == 0 && !opts.EphemeralPorts {
			opts.PortOffset = DevPortOffset
		}
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 30 * time.Second
	}
	st, err := OpenStore(opts.DataDir, opts.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, store: st, resolver: dns.New(opts.DNS), addrs: map[int]string{}}
	s.maillog = maillog.New(mailSubscribers{s})
	s.logins = loginlimit.New(loginlimit.Config{MailLog: s.maillog})
	s.mailResolver = s.resolver.Cached(dns.NewCache(dns.CacheConfig{}))
	if s.ops, err = newOps(st, nil, nil, opts.Logger, nil); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.bootstrap(context.Background()); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

// OpenStore opens a data directory the way the server does (used by CLI commands too).
func OpenStore(dir string, logger *slog.Logger) (*store.Store, error) {
	st, err := store.Open(dir, store.Options{Logger: logger, Describe: describe})
	if err != nil {
		return nil, fmt.Errorf("open data directory %s: %w", dir, err)
	}
	return st, nil
}

// Store is the server's store (tests and the control socket use it).
func (s *Server) Store() *store.Store { return s.store }

// Hostname is the mail hostname in use: the EHLO name of outbound mail, the name in Received:
// lines, the certificate's name.
func (s *Server) Hostname() string { return *s.hostname.Load() }

// Addr returns the address the listener for a standard port (25, 587, …) is bound to.
func (s *Server) Addr(stdPort int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[stdPort]
}

// bootstrap prepares an empty data directory: in dev mode it notes that the dev account is to be
// made (once the listeners are up, so a failed start leaves nothing behind); otherwise it makes a
// one-time setup token for the web wizard.
func (s *Server) bootstrap(ctx context.Context) error {
	domains, err := s.store.Domains(ctx)
	if err != nil {
		return err
	}
	host, err := manage.SettingHostname.String(ctx, s.store)
	if err != nil {
		return err
	}
	if len(domains) == 0 && s.opts.Dev {
		s.devPending = true
		if host == "" {
			host = "mail." + devDomain
		}
	} else if len(domains) == 0 {
		token, err := manage.SettingSetupToken.String(ctx, s.store)
		if err != nil {
			return err
		}
		if token == "" {
			token = randomToken(16)
			if err := s.store.SetSetting(ctx, manage.SettingSetupToken.Key, token); err != nil {
				return err
			}
		}
		s.setupToken = token
	}
	if host == "" {
		host, _ = os.Hostname()
		if !strings.Contains(host, ".") {
			host = "mailstead.invalid"
		}
	}
	s.hostname.Store(&host)
	return nil
}

const devDomain, devAddress = "mailstead.test", "dev@mailstead.test"

// createDevAccount makes dev mode's domain and account and returns the line that tells the
// password. It runs only after every listener is up, and the line is printed at once, so an
// account is never made whose password nobody saw.
func (s *Server) createDevAccount(ctx context.Context) (string, error) {
	pw := randomToken(12)
	if _, err := s.ops.Setup(ctx, manage.SetupParams{Hostname: s.Hostname(), Domain: devDomain, Admin: devAddress, Password: pw}); err != nil {
		return "", err
	}
	return fmt.Sprintf("dev mode: account %s with password %s\n", devAddress, pw), nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.NewReplacer("-", "x", "_", "y").Replace(base64.RawURLEncoding.EncodeToString(b))
}

// Start opens every listener and background worker. It returns once all listen.
func (s *Server) Start(ctx context.Context) error {
	bg, cancel := context.WithCancel(context.Background())
	s.cancelBg = cancel
	certCfg, err := s.certConfig(ctx, s.Hostname())
	if err != nil {
		return err
	}
	certs, err := acme.New(ctx, certCfg, s.store, s.resolver, s.log)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	s.certs = certs
	s.startJunk(bg) // before the control socket and pages, which may change its settings
	s.followSettings(bg)
	if s.ops, err = newOps(s.store, certs, junkSettings{s}, s.log, s.settingsApplied); err != nil {
		return err
	}
	// The control socket first: it also refuses a second server on the same data directory.
	if err := s.startControl(); err != nil {
		return err
	}
	s.startMetrics(ctx)
	events := make(chan store.MailEvent, 1024)
	s.mailEvents = events // before any service starts: read by mailSubscribers from then on
	s.goBackground(func() { recordMailEvents(bg, s.store, events, s.log) })

	for _, start := range []func(context.Context) error{s.startSMTP, s.startLMTP, s.startIMAP, s.startPOP3, s.startOutbound, s.startHTTP} {
		if err := start(ctx); err != nil {
			s.Shutdown(context.Background())
			return err
		}
	}
	// Ordering starts once port 80 listens: the check that the hostname points here probes it.
	s.goBackground(func() { certs.Run(bg) })
	if s.devPending {
		line, err := s.createDevAccount(ctx)
		if err != nil {
			s.Shutdown(context.Background())
			return fmt.Errorf("dev account: %w", err)
		}
		fmt.Fprint(s.opts.Out, line)
	}
	fmt.Fprint(s.opts.Out, s.accessText(ctx, s.setupToken))
	if s.opts.Dev {
		fmt.Fprint(s.opts.Out, s.devAddresses())
	}
	s.log.Info("mailstead started", "hostname", s.Hostname(), "data", s.opts.DataDir, "dev", s.opts.Dev,
		"bind", s.opts.Bind, "port_offset", s.opts.PortOffset)
	return nil
}

func (s *Server) domainHosts(ctx context.Context) ([]string, error) {
	domains, err := s.store.Domains(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(domains))
	for i, d := range domains {
		names[i] = d.Name
	}
	return acme.DomainHosts(names), nil
}

// goBackground runs fn as background work that Shutdown waits for. Once Shutdown has begun it
// starts nothing: a goroutine added after Shutdown's wait began would never be waited for, and one
// added before its stop would never be told to stop.
func (s *Server) goBackground(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// listen opens the listener for a standard port, honouring bind address and offset.
func (s *Server) listen(stdPort int) (net.Listener, error) {
	port := stdPort + s.opts.PortOffset
	if s.opts.EphemeralPorts {
		port = 0
	}
	addr := net.JoinHostPort(s.opts.Bind, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (port %d): %w", addr, stdPort, err)
	}
	s.mu.Lock()
	s.addrs[stdPort] = l.Addr().String()
	s.mu.Unlock()
	lim, err := s.connLimits()
	if err != nil {
		l.Close()
		return nil, err
	}
	name := serviceName(stdPort)
	return connlimit.Wrap(s.metrics.countAccepts(stdPort, l), name, lim, s.log, s.metrics.countRefusals(name)), nil
}

// connLimits are the limits every listener applies (connlimit), from the settings.
func (s *Server) connLimits() (connlimit.Limits, error) {
	ctx := context.Background()
	total, err := connlimit.SettingMaxConns.Int(ctx, s.store)
	if err != nil {
		return connlimit.Limits{}, err
	}
	perIP, err := connlimit.SettingMaxPerIP.Int(ctx, s.store)
	if err != nil {
		return connlimit.Limits{}, err
	}
	return connlimit.Limits{MaxConns: int(total), MaxPerClient: int(perIP)}, nil
}

// serve runs a listener's accept loop in the background and registers how to stop it. The
// stopper closes l itself, so the listener stops even when its accept loop only starts after
// stop ran (a loaded machine can run a new goroutine late; go-smtp's Serve, for one, then
// accepts for ever). A listener served once Shutdown has taken the stoppers is stopped at once:
// nothing else would stop it, and Shutdown would wait for its loop for ever.
func (s *Server) serve(name string, l net.Listener, serve func(net.Listener) error, stop func(context.Context) error) {
	stopper := func(ctx context.Context) error {
		err := stop(ctx)
		l.Close()
		return err
	}
	s.mu.Lock()
	late := s.stopping.Load() // under mu, where Shutdown takes the stoppers
	if !late {
		s.stoppers = append(s.stoppers, stopper)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := serve(l); err != nil && !errors.Is(err, net.ErrClosed) && !s.stopping.Load() {
				s.log.Error("listener stopped", "service", name, "addr", l.Addr().String(), "err", err)
			}
		}()
	}
	s.mu.Unlock()
	if late {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
		defer cancel()
		if err := stopper(ctx); err != nil {
			s.log.Warn("shutdown", "service", name, "err", err)
		}
	}
}

// Shutdown stops accepting, lets transactions in flight finish within the grace period, stops
// background work and closes the store cleanly.
func (s *Server) Shutdown(ctx context.Context) error {
	// Set before the stoppers are taken under mu: a listener or background loop that starts
	// after this (a start racing the stop) stops itself, or is not started (serve, goBackground).
	// Listeners report their own closing as an error; that is expected now.
	s.stopping.Store(true)
	ctx, cancel := context.WithTimeout(ctx, s.opts.ShutdownGrace)
	defer cancel()
	if s.control != nil {
		s.control.Close()
	}
	s.mu.Lock()
	stoppers := s.stoppers
	s.stoppers = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, stop := range stoppers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stop(ctx); err != nil {
				s.log.Warn("shutdown", "err", err)
			}
		}()
	}
	wg.Wait()
	if s.cancelBg != nil {
		s.cancelBg()
	}
	s.wg.Wait()
	return s.store.Close()
}

// Run starts the server and serves until ctx ends, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	// A signal during start-up ends the server after it has started, not half-way through.
	if err := s.Start(context.WithoutCancel(ctx)); err != nil {
		s.store.Close()
		return err
	}
	<-ctx.Done()
	s.log.Info("mailstead stopping")
	return s.Shutdown(context.Background())
}

func (s *Server) startSMTP(ctx context.Context) error {
	auth, err := s.authChecker(ctx)
	if err != nil {
		return err
	}
	spool, err := s.smtpSpool()
	if err != nil {
		return err
	}
	overQuota, err := smtp.SettingOverQuotaTemporary.Bool(ctx, s.store)
	if err != nil {
		return err
	}
	mx := smtp.NewMX(smtp.Config{
		Refused:            s.metrics.countRefusals("smtp"),
		OverQuotaTemporary: overQuota,
		Store:              s.store,
		Hostname:           s.Hostname,
		TLSConfig:          s.certs.TLSConfig(),
		Logger:             s.log.With("service", "smtp"),
		MailLog:            s.maillog,
		Limits:             s.smtpLimits(ctx),
		Auth:               auth,
		Spool:              spool,
		Classify:           s.classifyJunk,
		Delivered:          func(in *smtp.Delivered, _ int) { s.notifySuccess(in) },
	})
	s.addSMTPServer(mx)
	s.mx.Store(mx)
	l, err := s.listen(PortSMTP)
	if err != nil {
		return err
	}
	s.serve("smtp", l, mx.Serve, mx.Shutdown)
	return nil
}

// smtpLimits reads the SMTP limits; a stored value its definition refuses is logged and its
// default used, so a bad row never keeps the server from starting.
func (s *Server) smtpLimits(ctx context.Context) smtp.Limits {
	lim, err := smtp.LimitsFrom(ctx, s.store)
	if err != nil {
		s.log.Warn("smtp limits", "err", err)
	}
	return lim
}

// addSMTPServer registers a listener's server for changed limits (applySMTPLimits).
func (s *Server) addSMTPServer(srv *smtp.Server) {
	s.mu.Lock()
	s.smtpServers = append(s.smtpServers, srv)
	s.mu.Unlock()
}

// devAddresses tells a developer where to point a mail client.
func (s *Server) devAddresses() string {
	var b strings.Builder
	for _, p := range []struct {
		port int
		what string
	}{
		{PortSMTP, "SMTP (MX)"}, {PortSubmission, "submission (STARTTLS)"}, {PortSubmissions, "submission (TLS)"},
		{PortIMAP, "IMAP (STARTTLS)"}, {PortIMAPS, "IMAP (TLS)"}, {PortPOP3, "POP3 (STLS)"}, {PortPOP3S, "POP3 (TLS)"},
		{PortHTTPS, "admin page (https)"},
	} {
		if addr := s.Addr(p.port); addr != "" {
			fmt.Fprintf(&b, "  %-22s %s\n", p.what, addr)
		}
	}
	return b.String()
}
