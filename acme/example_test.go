package acme_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"

	"mailstead/acme"
)

// How server/ wires the Manager: one TLS source for every listener, the
// HTTP-01 handler on port 80, the HTTPS server on 443, and the loop.
// (Compiled, not run: it would listen on the real ports.)
func Example() {
	ctx := context.Background()
	var (
		kv       acme.KV       // *store.Store
		resolver acme.Resolver // *dns.Resolver
		settings = map[string]string{}
		offset   = 0 // --port-offset
	)
	cfg := acme.Config{
		Hostname:  "mail.example.com",
		Directory: settings[acme.SettingDirectory.Key],
		Email:     settings[acme.SettingEmail.Key],
		CertFile:  settings[acme.SettingCertFile.Key],
		KeyFile:   settings[acme.SettingKeyFile.Key],
		HTTPPort:  80 + offset,
		HTTPSPort: 443 + offset,
		ExtraHosts: func(ctx context.Context) ([]string, error) {
			return acme.DomainHosts([]string{"example.com"}), nil // from the store's domains
		},
	}
	m, err := acme.New(ctx, cfg, kv, resolver, slog.Default())
	if err != nil {
		panic(err)
	}
	go m.Run(ctx)

	// Port 80: challenges, autoconfig over plain HTTP, the rest to HTTPS.
	plain := http.NewServeMux()
	plain.Handle("/mail/config-v1.1.xml", http.NotFoundHandler()) // the autoconfig handler
	plain.Handle("/", m.RedirectHandler())
	ln80, _ := net.Listen("tcp", ":80")
	go http.Serve(ln80, m.HTTPHandler(plain))

	// Port 443: admin, MTA-STS policy, autoconfig; TLS-ALPN-01 is answered
	// inside the handshake.
	ln443, _ := net.Listen("tcp", ":443")
	admin := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: m.TLSConfig()}
	go admin.ServeTLS(ln443, "", "")

	// Implicit TLS (465, 993, 995) and STARTTLS (25, 587, 143, 110).
	ln993, _ := net.Listen("tcp", ":993")
	_ = tls.NewListener(ln993, m.TLSConfig())
	var plainConn net.Conn // after "STARTTLS" / "STLS"
	_ = tls.Server(plainConn, m.TLSConfig())

	// Settings changed (mailstead settings set acme.email ...): the whole
	// new Config, no restart.
	cfg.Email = "postmaster@example.com"
	_ = m.Reconfigure(ctx, cfg)
	// The admin page's "check now" after the user fixed DNS.
	m.Refresh()
	// CLI and admin page.
	_ = m.Status().String()
}
