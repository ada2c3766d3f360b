// Package acme owns the certificates of every TLS listener: one tls.Config
// that picks a certificate by SNI, orders and renews certificates through ACME
// (golang.org/x/crypto/acme/autocert, TLS-ALPN-01 on 443 and HTTP-01 on 80),
// serves a self-signed fallback until a real certificate exists, or loads a
// manually managed certificate from files.
//
// It keeps everything durable (ACME account key, certificates, the
// self-signed fallback) in the store's key-value table through the KV
// interface; it never speaks SQL, never listens on a socket itself and never
// orders a certificate from inside a TLS handshake.
package acme

import (
	"path/filepath"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mailstead/settings"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// ACME directories of Let's Encrypt. Settings may name them by URL or by the
// short names "production" and "staging".
const (
	LetsEncryptURL        = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStagingURL = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// The settings of this package. The server reads them into a Config and reconfigures the
// Manager when one changes.
var (
	SettingDirectory = settings.Def{Key: "acme.directory", Service: "Certificates", Kind: settings.String, Default: "production",
		Help:  `ACME directory: "production" (Let's Encrypt), "staging" (Let's Encrypt staging) or a directory URL`,
		Check: func(v string) error { _, err := directoryURL(v); return err }}
	SettingEmail = settings.Def{Key: "acme.email", Service: "Certificates", Kind: settings.String,
		Help: "contact address the certificate authority may write to about expiring or revoked certificates",
		Check: func(v string) error {
			if !strings.Contains(v, "@") || strings.ContainsAny(v, " \t<>,") {
				return errors.New("not an email address")
			}
			return nil
		}}
	SettingCertFile = settings.Def{Key: "tls.cert_file", Service: "Certificates", Kind: settings.String, Check: absolutePath,
		Help: "manual mode: PEM certificate chain file to serve instead of ACME (set together with tls.key_file); reloaded when it changes"}
	SettingKeyFile = settings.Def{Key: "tls.key_file", Service: "Certificates", Kind: settings.String, Check: absolutePath,
		Help: "manual mode: PEM private key file for tls.cert_file"}
)

// Settings are the definitions of this package's settings.
func Settings() []settings.Def {
	return []settings.Def{SettingDirectory, SettingEmail, SettingCertFile, SettingKeyFile}
}

func absolutePath(v string) error {
	if !filepath.IsAbs(v) {
		return errors.New("give an absolute path")
	}
	return nil
}

// KV is durable key-value storage: the store's kv table. GetKV returns an
// error satisfying errors.Is(err, fs.ErrNotExist) when the key is absent.
// Keys written by this package start with "acme/" or "tls/".
type KV interface {
	GetKV(ctx context.Context, key string) ([]byte, error)
	PutKV(ctx context.Context, key string, value []byte) error
	DeleteKV(ctx context.Context, key string) error
}

// Resolver looks up addresses; the dns package's Resolver satisfies it.
type Resolver interface {
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
}

// Config is what the server fills from flags and settings.
type Config struct {
	// Hostname is the mail server's name (MX target, IMAP/SMTP host). Its
	// certificate is served when a client sends no SNI or an unknown name.
	Hostname string

	// ExtraHosts returns the other names that may get a certificate, usually
	// DomainHosts(all mail domains). Called from the background loop only,
	// never during a handshake. May be nil.
	ExtraHosts func(ctx context.Context) ([]string, error)

	// Directory is the ACME directory: "" or "production" for Let's Encrypt,
	// "staging" for its staging CA, or a URL (setting acme.directory).
	Directory string

	// Email is the ACME account contact (setting acme.email). Optional.
	Email string

	// CertFile and KeyFile switch to manual mode when both are set
	// (settings tls.cert_file and tls.key_file): no ACME, the files are
	// served and reloaded when they change.
	CertFile, KeyFile string

	// DisableACME serves only the self-signed certificate (--dev, tests).
	DisableACME bool

	// IsOwnIP reports whether ip is an address of this server. Ordering for a
	// name starts only once every address it resolves to is ours. Nil means
	// "an address of a local network interface". An address it rejects is
	// still ours if an HTTP request to it on HTTPPort reaches this server
	// (1:1 NAT on clouds), which needs HTTPHandler to be served.
	IsOwnIP func(ip net.IP) bool

	// HTTPSPort is the port that plain-HTTP requests are redirected to.
	// Zero means 443. With --port-offset N pass 443+N.
	HTTPSPort int

	// HTTPPort is where HTTPHandler is served, for the reachability probe
	// of addresses IsOwnIP does not know. Zero means 80; with
	// --port-offset N pass 80+N.
	HTTPPort int

	// HTTPClient talks to the ACME directory. Nil means a client on the
	// system root pool, so SSL_CERT_FILE can point at a test CA.
	HTTPClient *http.Client

	// RenewBefore is how long before expiry a certificate is renewed.
	// Zero means 30 days. When it is not shorter than a certificate's
	// lifetime, a third of the lifetime is used instead.
	RenewBefore time.Duration

	// CheckInterval bounds how long the background loop sleeps between
	// checks of certificates, expiry and manual files. Zero means one hour.
	CheckInterval time.Duration
}

// DomainHosts returns the extra names a mail domain needs certificates for:
// mta-sts.<domain> (RFC 8461 section 3.3 policy host), autoconfig.<domain>
// (Thunderbird) and autodiscover.<domain> (Outlook fetches it over HTTPS only).
func DomainHosts(domains []string) []string {
	var hosts []string
	for _, d := range domains {
		d = normalizeName(d)
		if d == "" {
			continue
		}
		hosts = append(hosts, "mta-sts."+d, "autoconfig."+d, "autodiscover."+d)
	}
	return hosts
}

// Source says where a served certificate comes from.
type Source string

const (
	SourceSelfSigned Source = "self-signed"
	SourceACME       Source = "acme"
	SourceManual     Source = "manual"
)

// Manager is the one TLS source of the server. Build it with New, hand
// TLSConfig to every TLS listener, HTTPHandler to port 80, and run Run in the
// background. Reconfigure applies changed settings without a restart.
type Manager struct {
	kv        KV
	resolver  Resolver
	log       *slog.Logger
	retryBase time.Duration
	now       func() time.Time

	conf    atomic.Pointer[setup] // the current Config, made ready
	tlsConf *tls.Config           // what TLSConfig clones for each listener
	tickets ticketKeys            // session ticket keys every clone shares
	http01  atomic.Bool           // HTTPHandler was asked for: HTTP-01 is served on port 80
	force   atomic.Bool           // Refresh: check DNS now, not when the backoff says
	nudgeAt atomic.Int64          // unix seconds of the last wake-up from a handshake
	wake    chan struct{}

	mu      sync.Mutex
	hosts   map[string]*hostState // guarded by mu
	alarmed map[string]time.Time  // last expiry alarm per name; guarded by mu
	orders  int                   // orders started, for tests; guarded by mu
}

// setup is one Config made ready to serve. Reconfigure replaces it whole;
// handshakes and the loop take the current one once and use only it.
type setup struct {
	cfg         Config
	hostname    string // normalized; "localhost" until the server is set up
	directory   string
	renewBefore time.Duration
	interval    time.Duration
	selfSigned  certPair
	manual      *manualCert // nil unless manual mode
	acme        bool        // ordering enabled

	cache  *kvCache
	solver *autocert.Manager // answers challenges from the cache; never orders
	live   atomic.Pointer[certSet]
}

// hostState is the background loop's view of one name.
type hostState struct {
	state     string // human words: "waiting for DNS", "ordering", "valid", ...
	detail    string // why it waits, e.g. where the name resolves to
	dnsSince  time.Time
	lastErr   error
	lastErrAt time.Time
	failures  int
	next      time.Time // earliest next ordering attempt or DNS check
}

// unsetHostname names the self-signed certificate while Config.Hostname is
// empty (a fresh data directory before the setup wizard ran).
const unsetHostname = "localhost"

// New builds a Manager. It loads or creates the self-signed fallback and
// loads cached ACME or manual certificates, so TLSConfig is usable as soon as
// New returns; ordering starts when Run is called.
//
// An empty Config.Hostname is allowed before setup: the self-signed
// certificate is then made for "localhost" and nothing is ordered until
// Reconfigure gives a hostname.
func New(ctx context.Context, cfg Config, kv KV, resolver Resolver, logger *slog.Logger) (*Manager, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if kv == nil {
		return nil, errors.New("acme: no key-value store")
	}
	m := &Manager{
		kv:        kv,
		resolver:  resolver,
		log:       logger.With("component", "acme"),
		retryBase: retryBase,
		now:       time.Now,
		wake:      make(chan struct{}, 1),
		hosts:     map[string]*hostState{},
		alarmed:   map[string]time.Time{},
	}
	s, err := m.newSetup(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	m.conf.Store(s)
	m.tlsConf = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetCertificate:     m.getCertificate,
		GetConfigForClient: m.configForClient,
	}
	return m, nil
}

// Reconfigure applies a changed Config (settings edited while the server
// runs): new handshakes use it at once, open connections keep theirs.
// Certificates already issued by the same ACME directory are kept; a new
// directory starts from its own cache.
func (m *Manager) Reconfigure(ctx context.Context, cfg Config) error {
	s, err := m.newSetup(ctx, cfg, m.setup())
	if err != nil {
		return err
	}
	m.conf.Store(s)
	m.mu.Lock()
	for _, st := range m.hosts {
		st.next, st.failures = time.Time{}, 0
	}
	m.mu.Unlock()
	m.log.Info("certificate settings changed", "hostname", s.hostname, "directory", s.directory,
		"manual", s.manual != nil, "acme", s.acme)
	m.Refresh()
	return nil
}

func (m *Manager) setup() *setup { return m.conf.Load() }

// newSetup checks cfg and prepares it; prev (may be nil) lends its
// certificates when the directory is unchanged.
func (m *Manager) newSetup(ctx context.Context, cfg Config, prev *setup) (*setup, error) {
	hostname := normalizeName(cfg.Hostname)
	if hostname == "" {
		hostname = unsetHostname
	}
	if strings.ContainsAny(hostname, " /:@*") {
		return nil, fmt.Errorf("acme: hostname %q is not a DNS name", cfg.Hostname)
	}
	dir, err := directoryURL(cfg.Directory)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(dir)
	s := &setup{
		cfg:         cfg,
		hostname:    hostname,
		directory:   dir,
		renewBefore: cfg.RenewBefore,
		interval:    cfg.CheckInterval,
		// A name without a dot, an address, or no name yet (before setup):
		// nothing a CA would validate.
		acme: !cfg.DisableACME && strings.Contains(hostname, ".") && net.ParseIP(hostname) == nil &&
			normalizeName(cfg.Hostname) != "",
	}
	if s.renewBefore <= 0 {
		s.renewBefore = 30 * 24 * time.Hour
	}
	if s.interval <= 0 {
		s.interval = time.Hour
	}
	// Certificates and the account key are kept per CA, so switching from
	// staging to production orders anew instead of serving staging's.
	s.cache = &kvCache{kv: m.kv, prefix: kvPrefix + u.Host + "/", tokens: map[string][]byte{},
		onPut: func(key string, data []byte) { m.installPEM(s, key, data) }}
	s.solver = &autocert.Manager{Cache: s.cache, HostPolicy: m.challengePolicy}
	s.live.Store(&certSet{})
	if prev != nil && prev.directory == dir {
		s.live.Store(prev.live.Load())
	}

	if prev != nil && prev.hostname == hostname {
		s.selfSigned = prev.selfSigned
	} else if s.selfSigned, err = loadOrCreateSelfSigned(ctx, m.kv, hostname, m.now()); err != nil {
		return nil, err
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, fmt.Errorf("acme: manual mode needs both %s and %s", SettingCertFile.Key, SettingKeyFile.Key)
		}
		s.acme = false
		s.manual = &manualCert{certFile: cfg.CertFile, keyFile: cfg.KeyFile, log: m.log, now: m.now}
		if _, err := s.manual.get(); err != nil {
			// Keep serving (self-signed) so a typo does not stop mail; Status
			// and the log say what is wrong.
			m.log.Error("manual certificate not loaded, serving self-signed", "err", err)
		}
	}
	if s.acme {
		m.loadCached(ctx, s, []string{hostname})
	}
	return s, nil
}

func directoryURL(setting string) (string, error) {
	switch s := strings.TrimSpace(setting); strings.ToLower(s) {
	case "", "production", "letsencrypt":
		return LetsEncryptURL, nil
	case "staging", "letsencrypt-staging":
		return LetsEncryptStagingURL, nil
	default:
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", fmt.Errorf("neither a URL nor production/staging")
		}
		return s, nil
	}
}

// normalizeName lowercases a DNS name and drops a trailing dot.
func normalizeName(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

// Refresh asks the background loop to check DNS and certificates now, for
// example after the admin page added a domain or the user fixed DNS. Waits
// after failed orders are kept (the CA's rate limits).
func (m *Manager) Refresh() {
	m.force.Store(true)
	m.poke()
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// errNotExist reports whether err means "no such key".
func errNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
