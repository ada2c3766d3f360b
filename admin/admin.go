// Package admin owns the web side of mailstead: the setup wizard, the DNS records page with its
// live checks, the management pages, the user page (password, app passwords, phone onboarding),
// client autoconfiguration, MTA-STS policies and the JSON API, all from embedded templates.
// It never listens on a socket or loads certificates itself (server/ does), never speaks SQL
// (store/ does), and never shows a value that came from mail unescaped.
package admin

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"mailstead/loginlimit"
	"mailstead/manage"
)

//go:embed web
var webFS embed.FS

// CertStatus is the certificate state shown on the certificates page, filled by the server from
// the certificate manager.
// The JSON keys are those of /api/v1/certificates: snake_case as everywhere in the API, and an
// unknown date is left out rather than given as year 1.
type CertStatus struct {
	Hostname  string     `json:"hostname"`
	Source    string     `json:"source"` // "acme", "self-signed", "manual"
	Issuer    string     `json:"issuer,omitempty"`
	NotAfter  time.Time  `json:"not_after,omitzero"`
	Directory string     `json:"directory,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Hosts     []CertHost `json:"hosts"`
}

// CertHost is the state of one certificate name.
type CertHost struct {
	Name      string    `json:"name"`
	Source    string    `json:"source"`
	State     string    `json:"state"`
	Detail    string    `json:"detail,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	NotAfter  time.Time `json:"not_after,omitzero"`
}

// Config is what the server gives the admin pages.
type Config struct {
	Version  string // the running binary's version, shown on the overview
	Store    Store
	Resolver Resolver
	Logger   *slog.Logger
	Ports    Ports // the ports clients connect to (standard ones plus --port-offset)
	Dev      bool  // dev mode: no mail leaves the machine, so the port 25 probe is skipped

	// FallbackIPs gives this server's addresses when the admin.public_ips setting is empty
	// (the bind address, else the global addresses of the network interfaces).
	FallbackIPs func() []net.IP
	// Certs reports the certificate state. May be nil.
	Certs func() CertStatus
	// DKIMKeys lists a domain's DKIM public keys.
	DKIMKeys func(ctx context.Context, domain string) ([]DKIMKey, error)
	// Ops is the operations layer every page and API action goes through; nil means one on
	// Store without DKIM keys or certificates (tests).
	Ops *manage.Ops
	// MaxPageRequests bounds the page and API requests handled at once (default 64); over it a
	// request gets 503 at once. The MTA-STS policy and autoconfiguration are outside this
	// budget, so a flood of the admin page cannot stop mail servers and clients from reading them.
	MaxPageRequests int
	// Logins is the server-wide failed-login budget, shared with SMTP, IMAP and POP3; nil gives
	// the pages a limiter of their own.
	Logins *loginlimit.Limiter
}

// Admin serves the web pages.
type Admin struct {
	cfg    Config
	ops    *manage.Ops
	st     Store
	log    *slog.Logger
	pages  map[string]*template.Template
	logins *loginlimit.Limiter
	slots  chan struct{} // the page budget (MaxPageRequests)
	port25 port25Cache
	fresh  oneTime // app passwords just made, for the one page view that shows each
	mux    *http.ServeMux
}

// New builds the admin pages.
func New(cfg Config) (*Admin, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ports == (Ports{}) {
		cfg.Ports = StandardPorts
	}
	if cfg.Logins == nil {
		cfg.Logins = loginlimit.New(loginlimit.Config{})
	}
	if cfg.Ops == nil {
		cfg.Ops = manage.New(manage.Config{Store: cfg.Store, Log: cfg.Logger})
	}
	if cfg.MaxPageRequests <= 0 {
		cfg.MaxPageRequests = 64
	}
	a := &Admin{cfg: cfg, ops: cfg.Ops, st: cfg.Store, log: cfg.Logger, logins: cfg.Logins,
		slots: make(chan struct{}, cfg.MaxPageRequests)}
	if err := a.parseTemplates(); err != nil {
		return nil, err
	}
	a.mux = a.routes()
	return a, nil
}

// Handler serves HTTPS (port 443): every page, autoconfiguration, MTA-STS and the API. It
// checks cross-origin requests (CSRF) and sets the security headers on every response.
func (a *Admin) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	return securityHeaders(a.budget(cop.Handler(a.mux)))
}

// budget serves the requests mail servers and mail clients depend on (the MTA-STS policy,
// autoconfiguration) unconditionally and everything else within the page budget: over it, 503
// at once rather than a queue.
func (a *Admin) budget(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isMailService(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case a.slots <- struct{}{}:
			defer func() { <-a.slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "5")
			http.Error(w, "The server is busy. Try again in a moment.", http.StatusServiceUnavailable)
		}
	})
}

// isMailService reports whether path is one that other servers and mail clients fetch.
func isMailService(path string) bool {
	switch strings.ToLower(path) {
	case "/.well-known/mta-sts.txt", "/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml",
		"/autodiscover/autodiscover.xml":
		return true
	}
	return false
}

// HTTPHandler serves plain HTTP (port 80) behind the ACME challenge handler: client
// autoconfiguration, which Thunderbird fetches over http, and nothing that needs a secret.
// Every other request goes to redirect (to HTTPS).
func (a *Admin) HTTPHandler(redirect http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /mail/config-v1.1.xml", a.mozillaAutoconfig)
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", a.mozillaAutoconfig)
	mux.HandleFunc("/autodiscover/autodiscover.xml", a.autodiscover)
	mux.HandleFunc("/Autodiscover/Autodiscover.xml", a.autodiscover)
	mux.Handle("/", redirect)
	return securityHeaders(mux)
}

func (a *Admin) routes() *http.ServeMux {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles(http.FS(static))))

	// Open to everyone: setup (with its token), login, autoconfiguration, MTA-STS.
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /setup", a.setupForm)
	mux.HandleFunc("POST /setup", a.setupSubmit)
	mux.HandleFunc("GET /login", a.loginForm)
	mux.HandleFunc("POST /login", a.loginSubmit)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /mail/config-v1.1.xml", a.mozillaAutoconfig)
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", a.mozillaAutoconfig)
	mux.HandleFunc("/autodiscover/autodiscover.xml", a.autodiscover)
	mux.HandleFunc("/Autodiscover/Autodiscover.xml", a.autodiscover)
	mux.HandleFunc("GET /mail/mailstead.mobileconfig", a.publicMobileconfig)
	mux.HandleFunc("GET /.well-known/mta-sts.txt", a.mtaSTS)

	// Any logged-in account: the user page.
	user := func(p string, h func(http.ResponseWriter, *http.Request, *session)) {
		mux.Handle(p, a.requireUser(h))
	}
	user("GET /me", a.mePage)
	user("POST /me/password", a.meChangePassword)
	user("POST /me/app-passwords", a.meAddAppPassword)
	user("POST /me/app-passwords/remove", a.meRemoveAppPassword)
	user("GET /me/mailstead.mobileconfig", a.meMobileconfig)
	user("GET /me/qr.png", a.meQR)
	user("POST /me/junk", a.meJunk)

	// Admins only.
	adm := func(p string, h func(http.ResponseWriter, *http.Request, *session)) {
		mux.Handle(p, a.requireAdmin(h))
	}
	adm("GET /admin/{$}", a.dashboard)
	adm("GET /admin/dns", a.dnsPage)
	adm("GET /admin/dns/zone", a.dnsZone)
	adm("GET /admin/domains", a.domainsPage)
	adm("POST /admin/domains/add", a.domainAdd)
	adm("POST /admin/domains/remove", a.domainRemove)
	adm("POST /admin/domains/dkim", a.domainDKIM)
	adm("GET /admin/accounts", a.accountsPage)
	adm("POST /admin/accounts/add", a.accountAdd)
	adm("POST /admin/accounts/remove", a.accountRemove)
	adm("POST /admin/accounts/password", a.accountPassword)
	adm("POST /admin/accounts/quota", a.accountQuota)
	adm("POST /admin/accounts/admin", a.accountAdmin)
	adm("POST /admin/accounts/junk", a.accountJunk)
	adm("GET /admin/aliases", a.aliasesPage)
	adm("POST /admin/aliases/add", a.aliasAdd)
	adm("POST /admin/aliases/remove", a.aliasRemove)
	adm("GET /admin/queue", a.queuePage)
	adm("POST /admin/queue/retry", a.queueRetry)
	adm("POST /admin/queue/remove", a.queueRemove)
	adm("GET /admin/certificates", a.certsPage)
	adm("POST /admin/certificates/refresh", a.certsRefresh)
	adm("GET /admin/settings", a.settingsPage)
	adm("POST /admin/backup", a.backupDownload)
	adm("POST /admin/settings", a.settingsSave)
	adm("GET /admin/events", a.eventsPage)
	adm("GET /admin/tokens", a.tokensPage)
	adm("POST /admin/tokens/add", a.tokenAdd)
	adm("POST /admin/tokens/remove", a.tokenRemove)

	a.apiRoutes(mux)
	return mux
}

// AdminRoutes lists every page that needs an admin session (tests walk it).
func AdminRoutes() []string {
	return []string{
		"GET /admin/", "GET /admin/dns", "GET /admin/dns/zone", "GET /admin/domains", "POST /admin/domains/add",
		"POST /admin/domains/remove", "POST /admin/domains/dkim", "GET /admin/accounts", "POST /admin/accounts/add",
		"POST /admin/accounts/remove", "POST /admin/accounts/password", "POST /admin/accounts/quota",
		"POST /admin/accounts/admin", "POST /admin/accounts/junk", "GET /admin/aliases", "POST /admin/aliases/add", "POST /admin/aliases/remove",
		"GET /admin/queue", "POST /admin/queue/retry", "POST /admin/queue/remove", "GET /admin/certificates",
		"POST /admin/certificates/refresh", "GET /admin/settings", "POST /admin/settings", "POST /admin/backup", "GET /admin/events",
		"GET /admin/tokens", "POST /admin/tokens/add", "POST /admin/tokens/remove",
		"GET /me", "POST /me/password", "POST /me/app-passwords", "POST /me/app-passwords/remove",
		"GET /me/mailstead.mobileconfig", "GET /me/qr.png",
	}
}

// securityHeaders sets the headers every response carries: a strict content security policy
// (scripts and styles only from /static, no inline code, no framing), no MIME sniffing, no
// referrer leaking tokens in URLs.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		next.ServeHTTP(w, r)
	})
}

func staticFiles(fsys http.FileSystem) http.Handler {
	fileServer := http.FileServer(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, r)
	})
}

// hostname is the mail hostname from the settings.
func (a *Admin) hostname(ctx context.Context) string {
	h, _ := manage.SettingHostname.Value(ctx, a.st)
	if h == "" {
		return "localhost"
	}
	return h
}

// publicIPs are this server's addresses for A/AAAA and PTR records.
func (a *Admin) publicIPs(ctx context.Context) []net.IP {
	return PublicIPs(ctx, a.st, a.cfg.FallbackIPs)
}

// PublicIPs returns the addresses in the admin.public_ips setting, else fallback's.
func PublicIPs(ctx context.Context, st Store, fallback func() []net.IP) []net.IP {
	v, _ := SettingPublicIPs.String(ctx, st)
	ips, _ := ParsePublicIPs(v)
	if len(ips) == 0 && fallback != nil {
		ips = fallback()
	}
	return ips
}

// InterfaceIPs returns the global, non-private addresses of this machine's network interfaces:
// on a VPS, its public addresses.
func InterfaceIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []net.IP
	for _, ad := range addrs {
		ipn, ok := ad.(*net.IPNet)
		if ok && ipn.IP.IsGlobalUnicast() && !ipn.IP.IsPrivate() {
			out = append(out, ipn.IP)
		}
	}
	return out
}

// RecordsFor builds the records of domain (server records first) from the store's settings.
func RecordsFor(ctx context.Context, st Store, domain string, ips []net.IP, ports Ports,
	dkim func(ctx context.Context, domain string) ([]DKIMKey, error)) ([]Record, bool, error) {
	host, _ := manage.SettingHostname.Value(ctx, st)
	if host == "" {
		return nil, false, fmt.Errorf("the hostname is not set yet (setup)")
	}
	mode, _ := SettingMTASTSMode.String(ctx, st)
	in := RecordInput{Hostname: host, Domain: domain, IPs: ips, Ports: ports, MTASTSMode: mode}
	// The stored value, read raw: acme owns the setting, and unset means Let's Encrypt.
	if dir, _, _ := st.SettingValue(ctx, "acme.directory"); dir == "" || dir == "production" || dir == "staging" ||
		strings.Contains(dir, "letsencrypt.org") {
		in.CAAIssuer = "letsencrypt.org"
	}
	haveDKIM := false
	if dkim != nil {
		keys, err := dkim(ctx, domain)
		if err != nil {
			return nil, false, err
		}
		in.DKIM, haveDKIM = keys, len(keys) > 0
	}
	return append(ServerRecords(in), DomainRecords(in)...), haveDKIM, nil
}
