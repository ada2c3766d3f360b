// Package smtp runs mailstead's SMTP listeners on go-smtp: the MX receiver on port 25 and, with
// authentication, submission on 587 and 465. It owns session policy (recipient checks, relay
// rules, limits) and hands accepted mail to the store; it never relays for anyone it has not
// authenticated and never acknowledges a message before the store has committed it.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/connlimit"
	"mailstead/delivery"
	"mailstead/mailauth"
	"mailstead/maillog"
	"mailstead/scram"
	"mailstead/store"
)

// Limits bound what one client can make the server do.
type Limits struct {
	MaxMessageSize int64         // bytes; SIZE= above it → 552 5.3.4
	MaxRecipients  int           // per message; more → 452 4.5.3
	MaxLineLength  int           // bytes per command or message line
	IdleTimeout    time.Duration // per read, not per transfer
	MaxConns       int           // concurrent connections in all
	MaxConnsPerIP  int           // concurrent connections from one IP; excess → 421 4.7.0
	MaxErrors      int           // rejected commands per session before it is closed
	// MinDataRate is the average rate in bytes per second a DATA/BDAT transfer must keep after
	// its first DataGrace, so a transfer's deadline grows with its size (50 MiB at 4 KiB/s:
	// about 3.5 hours). Zero: no floor.
	MinDataRate int64
	DataGrace   time.Duration
	// HandshakeTimeout bounds a TLS handshake, implicit (465) or after STARTTLS.
	HandshakeTimeout time.Duration
}

// DefaultLimits are the limits of the settings' defaults (settings.go), used when a Config
// gives none.
var DefaultLimits = defaultLimits()

// Store is what the SMTP listeners need of the store, declared here as pop3.Backend is: the
// recipient checks, logins and the delivery function's writes. *store.Store satisfies it.
type Store interface {
	delivery.Store
	Domains(ctx context.Context) ([]store.Domain, error)
	IsLocalDomain(ctx context.Context, name string) (bool, error)
	Postmasters(ctx context.Context, domain string) ([]int64, error)
	Authenticate(ctx context.Context, address, password string) (store.Account, error)
	OwnedAddresses(ctx context.Context, accountID int64) ([]string, error)
	SCRAMCredentials(ctx context.Context, address string) (store.Account, scram.Credentials, error)
}

var _ Store = (*store.Store)(nil)

// Config is what an SMTP listener needs.
type Config struct {
	Store     Store
	Hostname  func() string // our name in the greeting, EHLO reply and Received: lines
	TLSConfig *tls.Config
	Logger    *slog.Logger
	// Refused, if set, counts each connection refused over a connection limit (metrics).
	Refused func(limit string)
	Limits  Limits
	// Auth, if set, authenticates senders on port 25: CheckSender at MAIL FROM, Check after
	// DATA (SPF, DKIM, DMARC, iprev, DNSBL), which may reject or defer the message or send it to
	// Junk. Its Hostname is replaced by Hostname() for each message.
	Auth *mailauth.Checker
	// Spool receives message data; nil means a spool of this server's own in a temporary
	// directory, with no budget (tests). The server passes one in its data directory.
	Spool *Spool
	// Delivery stores accepted messages; nil means delivery.New(Store, Hostname).
	Delivery *delivery.Deliverer
	// MailLog writes the stable mail lines (smtp delivered, submitted, rejected) as typed events
	// for the metrics and the admin page; nil writes the lines only.
	MailLog *maillog.Log
	// Delivered, if set, is told of every committed message (metrics, queue wake-up).
	Delivered func(d *Delivered, remote int)
	// OverQuotaTemporary answers mail that would take an account over its quota with
	// 452 4.2.2, which the sender retries, instead of 552 5.2.2 (RFC 3463 §3.3 mailbox full).
	OverQuotaTemporary bool
	// Classify, if set, files each local account's copy of a port-25 message (the junk filter):
	// it runs after sender authentication on the message as it will be stored (its first
	// ClassifyBytes), and may send that copy to Junk and add header lines to it alone. A filter
	// that fails files nothing and delays nothing.
	Classify func(ctx context.Context, accountID int64, msg []byte) Filing
}

// ClassifyBytes is how much of a message Classify sees: the header and the start of the body
// tell spam from ham, and a bounded read keeps a 50 MB message from being loaded for it.
const ClassifyBytes = 1 << 20

// Filing is where Classify puts one account's copy.
type Filing struct {
	Junk   bool   // into the account's Junk mailbox
	Header string // header lines for this copy only (the score), CRLF-terminated
}

// Server is one SMTP listener's server.
type Server struct {
	cfg       Config
	srv       *gosmtp.Server
	spool     *Spool
	deliverer *delivery.Deliverer
	tempSpool string // the directory of a spool made here, removed at Shutdown
	draining  atomic.Bool
	limits    atomic.Pointer[Limits]           // the per-connection limits; SetLimits swaps them
	auth      atomic.Pointer[mailauth.Checker] // the port-25 checks; SetAuth swaps them

	refusals connlimit.RefusalLog // over-limit connections, once per client per minute

	mu        sync.Mutex
	listeners []*limitListener
}

// NewMX returns the receiver for port 25: no AUTH, mail only for local recipients.
func NewMX(cfg Config) *Server {
	s := newServer(cfg)
	s.srv = s.goSMTP(gosmtp.BackendFunc(s.newSession), mxTLSConfig(s.cfg.TLSConfig))
	return s
}

func newServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits
	}
	s := &Server{cfg: cfg, spool: cfg.Spool, deliverer: cfg.Delivery}
	s.refusals.Count = cfg.Refused
	if s.deliverer == nil {
		s.deliverer = delivery.New(cfg.Store, cfg.Hostname)
	}
	if s.spool == nil {
		dir, err := os.MkdirTemp("", "mailstead-spool-")
		if err == nil {
			s.spool, err = NewSpool(dir, 0, nil)
		}
		if err != nil {
			s.spool = &Spool{threshold: math.MaxInt} // no directory: keep messages in memory
		} else {
			s.tempSpool = dir
		}
	}
	s.limits.Store(&cfg.Limits)
	s.auth.Store(cfg.Auth)
	return s
}

// SetLimits changes the message size, recipient, line-length and error limits for the
// connections accepted from now on (a changed setting); sessions in progress keep theirs.
// The connection limits and idle timeout stay those the listener started with.
func (s *Server) SetLimits(lim Limits) { s.limits.Store(&lim) }

// SetAuth replaces the port-25 sender checks (changed settings) for the next command that
// uses them.
func (s *Server) SetAuth(c *mailauth.Checker) { s.auth.Store(c) }

// Limits are the limits new connections get.
func (s *Server) Limits() Limits { return *s.limits.Load() }

// goSMTP configures the go-smtp server both listener kinds run on, with the limits and the
// extensions mailstead offers (RFC 6531 SMTPUTF8, RFC 8689 REQUIRETLS, RFC 3461 DSN).
func (s *Server) goSMTP(be gosmtp.Backend, tlsConfig *tls.Config) *gosmtp.Server {
	srv := gosmtp.NewServer(be)
	srv.Domain = s.cfg.Hostname()
	srv.TLSConfig = tlsConfig
	srv.MaxMessageBytes = s.cfg.Limits.MaxMessageSize
	srv.MaxRecipients = s.cfg.Limits.MaxRecipients
	srv.MaxLineLength = s.cfg.Limits.MaxLineLength
	// Each connection takes the hostname and limits of the moment it is accepted, so a changed
	// setting applies to the next session without a restart.
	srv.ConnSettings = func() gosmtp.ConnSettings {
		lim := s.limits.Load()
		return gosmtp.ConnSettings{Domain: s.cfg.Hostname(), MaxRecipients: lim.MaxRecipients,
			MaxMessageBytes: lim.MaxMessageSize, MaxLineLength: lim.MaxLineLength}
	}
	srv.WriteTimeout = time.Minute
	srv.HandshakeTimeout = s.cfg.Limits.HandshakeTimeout
	if srv.HandshakeTimeout <= 0 {
		srv.HandshakeTimeout = DefaultLimits.HandshakeTimeout
	}
	srv.EnableSMTPUTF8 = true
	srv.EnableREQUIRETLS = true
	srv.EnableDSN = true // RFC 3461: NOTIFY, ORCPT, RET, ENVID are kept with the message (dsn.go)
	srv.ErrorLog = log.New(slogWriter{s.cfg.Logger, s.cfg.MailLog}, "", 0)
	return srv
}

// mxTLSConfig keeps TLS session tickets working for the MTAs that deliver to port 25, Microsoft's
// among them. Go's TLS 1.3 server sends its tickets in the same flight as its Finished, and
// Exchange Online's STARTTLS client then drops the connection (golang/go#70232; mox, maddy and
// chasquid turned tickets off instead). When the server asks for an (optional) client
// certificate, Go sends the tickets only after the client's Finished, which such clients accept,
// and resumption keeps working. No certificate is required or checked.
func mxTLSConfig(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	c = c.Clone() // shares the session ticket keys with the other listeners
	c.ClientAuth = tls.RequestClientCert
	return c
}

// Serve accepts plain connections (port 25, STARTTLS offered) until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(s.limit(l, false))
}

func (s *Server) limit(l net.Listener, implicitTLS bool) *limitListener {
	ll := s.newLimitListener(l, implicitTLS)
	s.mu.Lock()
	s.listeners = append(s.listeners, ll)
	s.mu.Unlock()
	return ll
}

// ServeTLS accepts implicit-TLS connections (port 465, RFC 8314).
func (s *Server) ServeTLS(l net.Listener) error {
	return s.serve(tls.NewListener(s.limit(l, true), s.cfg.TLSConfig))
}

func (s *Server) serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, gosmtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, ends idle sessions, lets transfers in progress finish until ctx ends,
// then closes what is left. A message whose transfer is cut off was never acknowledged.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	for _, l := range s.listeners {
		l.wakeIdle()
	}
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.srv.Close()
	}
	if s.tempSpool != "" {
		os.RemoveAll(s.tempSpool)
	}
	if errors.Is(err, gosmtp.ErrServerClosed) {
		return nil
	}
	return err
}

// slogWriter routes go-smtp's own log lines (accept errors, panics) into slog.
type slogWriter struct {
	l  *slog.Logger
	ml *maillog.Log
}

// A failed TLS handshake is the client's problem (scanners, old clients): one INFO line that the
// metrics count, not an ERROR.
func (w slogWriter) Write(p []byte) (int, error) {
	detail := strings.TrimSpace(string(p))
	if strings.Contains(detail, "tls: ") || strings.Contains(detail, "handshake") {
		w.ml.HandshakeFailed(w.l, "smtp", "detail", detail)
		return len(p), nil
	}
	w.l.Error("smtp", "detail", detail)
	return len(p), nil
}

var _ io.Writer = slogWriter{}
