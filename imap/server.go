// Package imap serves mailboxes over IMAP4rev2 and IMAP4rev1 (RFC 9051, RFC 3501) on top of
// go-imap/v2's imapserver, backed by the store, with push through per-session trackers fed only
// from the store's committed change events.
//
// It owns the IMAP listeners, sessions, login throttling and connection limits. It must never
// speak SQL, import another protocol package, or advertise a capability whose session interface
// is missing (imapserver panics on that connection).
package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mailstead/maillog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailstead/connlimit"
	"mailstead/loginlimit"
)

// Config holds what a Server needs. Zero values pick the defaults documented on each field.
type Config struct {
	// MailLog writes the stable lines that are also typed events (failed TLS handshakes);
	// nil still writes the lines.
	MailLog *maillog.Log
	// Store is the data directory the server serves. Required.
	Store Store
	// TLSConfig serves STARTTLS on Serve and implicit TLS on ServeTLS. Required unless
	// AllowInsecureAuth is set (then Serve works without TLS and ServeTLS is unavailable).
	TLSConfig *tls.Config
	// Logger receives one line per notable event; "auth failed" lines are meant for fail2ban.
	Logger *slog.Logger
	// AllowInsecureAuth allows LOGIN and AUTHENTICATE before TLS. Only for dev mode on loopback:
	// otherwise LOGINDISABLED is advertised until STARTTLS (RFC 9051 §6.2.3).
	AllowInsecureAuth bool
	// MaxMessageSize bounds APPEND literals (APPENDLIMIT, RFC 7889). Default 50 MiB.
	MaxMessageSize int64
	// MaxConnsPerIP bounds simultaneous connections from one IPv4 address or IPv6 /64. Default 20.
	MaxConnsPerIP int
	// MaxConnsPerAccount bounds simultaneous logged-in sessions of one account. Default 30
	// (phones, desktops and sync tools each open several).
	MaxConnsPerAccount int
	// IdleTimeout ends a connection that sends nothing for this long; re-issuing IDLE resets it
	// (RFC 9051 §5.4 asks for at least 30 minutes). Default 30 minutes.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the implicit-TLS handshake on ServeTLS. Default 30 seconds.
	HandshakeTimeout time.Duration
	// Logins is the server-wide failed-login budget, shared with SMTP, POP3 and the web; nil
	// gives this server a limiter of its own.
	Logins *loginlimit.Limiter
	// Refused, if set, counts each connection refused over MaxConnsPerIP (metrics).
	Refused func(limit string)
	// Hostname, when set, names the server in each new connection's greeting; it is called per
	// connection, so a changed hostname shows without a restart.
	Hostname func() string
}

// Server is an IMAP server. One Server may serve any number of listeners.
type Server struct {
	cfg   Config
	log   *slog.Logger
	st    Store
	imap  *imapserver.Server
	hub   *hub
	unsub func()
	// refusals logs connections over the per-client limit once per client per minute.
	refusals connlimit.RefusalLog

	mu        sync.Mutex
	listeners map[net.Listener]bool
	perIP     map[string]int
	perAcct   map[int64]int
	sessions  map[*session]bool
	closing   bool
	closed    chan struct{}
	closeOnce sync.Once
}

// capabilities the server announces through imapserver; the library adds SASL-IR, LITERAL-,
// UNSELECT, ENABLE, IDLE, UTF8=ACCEPT, STARTTLS, AUTH=PLAIN/LOGINDISABLED and APPENDLIMIT=n
// (from SessionAppendLimit). Each one here is backed by a session method.
var capabilities = imap.CapSet{
	imap.CapIMAP4rev2:        {},
	imap.CapIMAP4rev1:        {},
	imap.CapNamespace:        {}, // SessionNamespace
	imap.CapMove:             {}, // SessionMove
	imap.CapUIDPlus:          {},
	imap.CapESearch:          {},
	imap.CapSearchRes:        {},
	imap.CapListExtended:     {},
	imap.CapListStatus:       {},
	imap.CapStatusSize:       {},
	imap.CapBinary:           {},
	imap.CapChildren:         {},
	imap.CapSpecialUse:       {},
	imap.CapCreateSpecialUse: {},
	imap.CapLiteralPlus:      {},
	imap.CapID:               {}, // SessionID (id.go)
	imap.CapCondStore:        {}, // MODSEQ in FETCH/STORE/SEARCH/STATUS/SELECT (condstore_interop_test.go)
	imap.CapQResync:          {}, // SessionQResync (qresync.go), VANISHED instead of EXPUNGE
	imap.CapWithin:           {}, // SEARCH OLDER/YOUNGER (search.go)
	imap.CapPreview:          {}, // FETCH PREVIEW (preview.go)
	imap.CapQuota:            {}, // SessionQuota (quota.go); the limit is the account's
	"QUOTA=RES-STORAGE":      {}, // with STATUS DELETED-STORAGE (RFC 9208 §4.4)
}

// NewServer builds a server and subscribes it to the store's change events.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("imap: Config.Store is required")
	}
	if cfg.TLSConfig == nil && !cfg.AllowInsecureAuth {
		return nil, errors.New("imap: Config.TLSConfig is required unless AllowInsecureAuth is set")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 50 << 20
	}
	if cfg.MaxMessageSize > 1<<31 {
		cfg.MaxMessageSize = 1 << 31
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = 20
	}
	if cfg.MaxConnsPerAccount <= 0 {
		cfg.MaxConnsPerAccount = 30
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.Logins == nil {
		cfg.Logins = loginlimit.New(loginlimit.Config{})
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		st:        cfg.Store,
		listeners: map[net.Listener]bool{},
		perIP:     map[string]int{},
		perAcct:   map[int64]int{},
		sessions:  map[*session]bool{},
		closed:    make(chan struct{}),
	}
	s.refusals.Count = cfg.Refused
	s.hub = newHub(s.log)
	s.imap = imapserver.New(&imapserver.Options{
		NewSession:   s.newSession,
		Caps:         capabilities,
		Logger:       libLogger{s.log, s.cfg.MailLog},
		TLSConfig:    cfg.TLSConfig,
		InsecureAuth: cfg.AllowInsecureAuth,
	})
	// One subscription for the whole server; the hub fans events out per mailbox.
	s.unsub = cfg.Store.Subscribe(s.hub.publish)
	return s, nil
}

// Serve accepts IMAP connections on ln (port 143): cleartext until STARTTLS.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, false)
}

// ServeTLS accepts implicit-TLS IMAP connections on ln (port 993, RFC 8314).
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.cfg.TLSConfig == nil {
		return errors.New("imap: ServeTLS needs Config.TLSConfig")
	}
	return s.serve(ln, true)
}

func (s *Server) serve(ln net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("imap: server closed")
	}
	wrapped := &limitListener{Listener: ln, srv: s, implicitTLS: implicitTLS}
	s.listeners[wrapped] = true
	s.mu.Unlock()
	err := s.imap.Serve(wrapped)
	s.mu.Lock()
	delete(s.listeners, wrapped)
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil
	}
	return err
}

// Shutdown stops accepting, tells every session "BYE" and waits for them to end or ctx to be
// done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	// Each BYE in its own goroutine: a client that does not read must not delay the others, and
	// when ctx ends Close cuts every connection, which ends the BYEs still blocked.
	for _, sess := range sessions {
		if !sess.authed.Load() {
			sess.conn.NetConn().Close() // nothing to lose, and perhaps no TLS to say BYE in
			continue
		}
		go sess.end("Server shutting down")
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.sessions)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	return s.Close()
}

// Close immediately closes every listener and connection and stops following the store.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		close(s.closed)
		s.unsub()
		// Listeners closed by Shutdown, or a server that never served, are not failures.
		if err = s.imap.Close(); err != nil && (errors.Is(err, net.ErrClosed) || err.Error() == "imapserver: server closed") {
			err = nil
		}
	})
	return err
}

// acquireIP counts a new connection from ip, refusing it beyond MaxConnsPerIP.
func (s *Server) acquireIP(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip] >= s.cfg.MaxConnsPerIP {
		return false
	}
	s.perIP[ip]++
	return true
}

func (s *Server) releaseIP(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

func (s *Server) acquireAccount(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAcct[id] >= s.cfg.MaxConnsPerAccount {
		return false
	}
	s.perAcct[id]++
	return true
}

func (s *Server) releaseAccount(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAcct[id]--; s.perAcct[id] <= 0 {
		delete(s.perAcct, id)
	}
}

// libLogger sends imapserver's own messages (mostly clients going away) to debug level.
type libLogger struct {
	log *slog.Logger
	ml  *maillog.Log
}

func (l libLogger) Printf(format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if strings.Contains(detail, "tls: ") || strings.Contains(detail, "handshake") {
		l.ml.HandshakeFailed(l.log, "imap", "detail", detail)
		return
	}
	l.log.Debug("imapserver", "detail", detail)
}

// openFrom is how many connections the client of ip holds (tests).
func (s *Server) openFrom(ip string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perIP[loginlimit.ClientKey(ip)]
}

// sessionCount is how many sessions are open (tests).
func (s *Server) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
