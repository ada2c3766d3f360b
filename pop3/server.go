package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mailstead/maillog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mailstead/connlimit"
	"mailstead/loginlimit"
)

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown.
var ErrServerClosed = errors.New("pop3: server closed")

// Config is everything a Server needs. Zero values select the defaults named
// on each field.
type Config struct {
	// MailLog writes the stable lines that are also typed events (failed TLS handshakes);
	// nil still writes the lines.
	MailLog *maillog.Log
	// Backend authenticates users and opens their maildrop. Required.
	Backend Backend
	// TLSConfig is used for STLS on the plain port (RFC 2595) and for
	// implicit TLS (ServeTLS). Nil: no STLS is offered and ServeTLS fails.
	TLSConfig *tls.Config
	// Logger receives session and authentication events. Nil: discarded.
	Logger *slog.Logger
	// Hostname, when set, names the server in the greeting; it is called per connection, so a
	// changed hostname shows without a restart.
	Hostname func() string
	// AllowInsecureAuth permits USER/PASS and AUTH without TLS for clients
	// on a loopback address (127.0.0.0/8, ::1), for the dev mode. Other
	// clients must always use STLS or the implicit-TLS port first
	// (RFC 2595 §4).
	AllowInsecureAuth bool
	// MaxConnections caps concurrent sessions over all listeners. Default 500.
	MaxConnections int
	// MaxConnectionsPerIP caps concurrent sessions from one IPv4 address or
	// one IPv6 /64. Default 20.
	MaxConnectionsPerIP int
	// IdleTimeout closes a session that sends nothing for this long, without
	// entering UPDATE. Default 10 minutes, the minimum of RFC 1939 §3.
	IdleTimeout time.Duration
	// TLSHandshakeTimeout bounds a TLS handshake. Default 30 seconds.
	TLSHandshakeTimeout time.Duration
	// MaxErrors is how many -ERR replies to bad commands a session gets
	// before the server closes it. Default 20.
	MaxErrors int
	// MaxAuthFailures is how many failed logins one session may make before
	// the server closes it. Default 3.
	MaxAuthFailures int
	// Logins is the server-wide failed-login budget, shared with SMTP, IMAP
	// and the web. Nil: a limiter of this server's own.
	Logins *loginlimit.Limiter
	// Refused, if set, counts each connection refused over a limit (metrics).
	Refused func(limit string)
	// Implementation is the CAPA IMPLEMENTATION value (RFC 2449 §6.9).
	// Default "mailstead".
	Implementation string
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxConnections, 500)
	def(&c.MaxConnectionsPerIP, 20)
	def(&c.MaxErrors, 20)
	def(&c.MaxAuthFailures, 3)
	defDur(&c.IdleTimeout, 10*time.Minute)
	defDur(&c.TLSHandshakeTimeout, 30*time.Second)
	if c.Logins == nil {
		c.Logins = loginlimit.New(loginlimit.Config{})
	}
	if c.Implementation == "" {
		c.Implementation = "mailstead"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Server serves POP3 on any number of listeners. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // cancelled when Shutdown gives up waiting
	cancel context.CancelFunc

	closing   atomic.Bool
	closingCh chan struct{}

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	perIP     map[string]int
	rejecting int
	locks     map[string]struct{}
	refusals  connlimit.RefusalLog // once per client per minute
	wg        sync.WaitGroup
}

// NewServer checks cfg and returns a Server that is not yet listening.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("pop3: Config.Backend is nil")
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		closingCh: make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		perIP:     make(map[string]int),
		locks:     make(map[string]struct{}),
	}
	s.refusals.Count = cfg.Refused
	return s, nil
}

// Serve accepts plain POP3 connections on l (port 110) and offers STLS when
// Config.TLSConfig is set. It returns ErrServerClosed after Shutdown.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeTLS accepts implicit-TLS POP3 connections on l (port 995); l is a
// plain TCP listener, the server does the handshake. It returns
// ErrServerClosed after Shutdown.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.cfg.TLSConfig == nil {
		return errors.New("pop3: ServeTLS without Config.TLSConfig")
	}
	return s.serve(l, true)
}

func (s *Server) serve(l net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("pop3: accept on %s: %w", l.Addr(), err)
			}
			// Resource exhaustion (EMFILE) and the like: wait and retry
			// instead of spinning or giving up on the listener.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("pop3 accept failed", "addr", l.Addr().String(), "err", err)
			select {
			case <-time.After(backoff):
			case <-s.closingCh:
			}
			continue
		}
		backoff = 0
		s.accept(c, implicitTLS)
	}
}

// accept admits c as a session or refuses it when a connection limit is
// reached.
func (s *Server) accept(c net.Conn, implicitTLS bool) {
	ip := connlimit.RemoteIP(c.RemoteAddr())
	key := loginlimit.ClientKey(ip)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		c.Close()
		return
	}
	if len(s.sessions) >= s.cfg.MaxConnections || s.perIP[key] >= s.cfg.MaxConnectionsPerIP {
		if s.rejecting >= 64 {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.rejecting++
		s.wg.Add(1)
		s.mu.Unlock()
		s.refusals.Refused(s.log, "pop3", ip, "protocol")
		go s.refuse(c, implicitTLS)
		return
	}
	sess := newSession(s, c, ip, key, implicitTLS)
	s.sessions[sess] = struct{}{}
	s.perIP[key]++
	s.wg.Add(1)
	s.mu.Unlock()
	go sess.run()
}

// refuse tells the client the server is busy (RFC 2449 §8.1.2 SYS/TEMP) and
// closes the connection.
func (s *Server) refuse(c net.Conn, implicitTLS bool) {
	defer func() {
		c.Close()
		s.mu.Lock()
		s.rejecting--
		s.mu.Unlock()
		s.wg.Done()
	}()
	deadline := time.Now().Add(min(s.cfg.TLSHandshakeTimeout, 10*time.Second))
	c.SetDeadline(deadline)
	if implicitTLS {
		tc := tls.Server(c, s.cfg.TLSConfig)
		if tc.Handshake() != nil {
			return
		}
		c = tc
	}
	io.WriteString(c, "-ERR [SYS/TEMP] too many connections, try again later\r\n")
}

func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.perIP[sess.limitKey]--
	if s.perIP[sess.limitKey] <= 0 {
		delete(s.perIP, sess.limitKey)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// lock takes the exclusive maildrop lock of RFC 1939 §8.
func (s *Server) lock(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.locks[key]; held {
		return false
	}
	s.locks[key] = struct{}{}
	return true
}

func (s *Server) unlock(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.locks, key)
}

// Shutdown stops accepting, tells idle sessions the server is going away
// (-ERR [SYS/TEMP], without UPDATE, so nothing is deleted), lets sessions
// finish the command they are running and waits for them. When ctx ends
// first it closes the remaining connections, waits for their goroutines and
// returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing.Swap(true) {
		close(s.closingCh)
	}
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.interrupt()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for sess := range s.sessions {
		sess.raw.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}
