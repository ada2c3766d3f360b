package server

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"mailstead/maillog"
	"net"
	"net/http"
	"strings"
	"time"

	"mailstead/admin"
	"mailstead/mailauth"
)

// startHTTP serves the admin pages, autoconfiguration and MTA-STS policies over HTTPS on 443,
// and ACME HTTP-01 challenges plus autoconfiguration over plain HTTP on 80 (everything else
// there is redirected to HTTPS). Both use the one TLS source of the certificate manager.
func (s *Server) startHTTP(ctx context.Context) error {
	a, err := admin.New(admin.Config{
		Version:     s.opts.Version,
		Store:       s.store,
		Resolver:    s.resolver,
		Logger:      s.log.With("service", "admin"),
		Ports:       admin.StandardPorts.Offset(s.opts.PortOffset),
		Dev:         s.opts.Dev,
		FallbackIPs: s.fallbackIPs,
		Certs:       s.certStatus,
		DKIMKeys:    s.dkimKeys,
		Ops:         s.ops,
		Logins:      s.logins,
	})
	if err != nil {
		return err
	}
	errorLog := log.New(httpErrorLog{s.log.With("service", "http"), s.maillog}, "", 0)
	l443, err := s.listen(PortHTTPS)
	if err != nil {
		return err
	}
	l80, err := s.listen(PortHTTP)
	if err != nil {
		l443.Close()
		return err
	}
	https := &http.Server{
		Handler: a.Handler(),
		// A clone: net/http adds "h2" and "http/1.1" to the config it is given, and the shared
		// one must offer no ALPN protocol, or IMAP clients that offer "imap" are refused.
		TLSConfig:         s.certs.TLSConfig().Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute, // the backup download lifts it for itself
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog, // TLS handshake noise from scanners is INFO, not an error
	}
	plain := &http.Server{
		Handler:           s.certs.HTTPHandler(a.HTTPHandler(s.certs.RedirectHandler())),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
	// net/http has no connection limit of its own: s.listen applies connlimit's, per client and
	// in all, which refuse at once rather than queue (netutil.LimitListener let one client's
	// idle connections block everyone).
	s.serve("https", l443, func(l net.Listener) error { return httpDone(https.ServeTLS(l, "", "")) }, https.Shutdown)
	s.serve("http", l80, func(l net.Listener) error { return httpDone(plain.Serve(l)) }, plain.Shutdown)
	return nil
}

// httpErrorLog takes net/http's own lines: a failed TLS handshake (scanners, old clients) is one
// INFO line the metrics count; the rest (clients going away) is debug.
type httpErrorLog struct {
	log *slog.Logger
	ml  *maillog.Log
}

func (l httpErrorLog) Write(p []byte) (int, error) {
	detail := strings.TrimSpace(string(p))
	if strings.Contains(detail, "TLS handshake error") {
		l.ml.HandshakeFailed(l.log, "https", "detail", detail)
	} else {
		l.log.Debug("http", "detail", detail)
	}
	return len(p), nil
}

func httpDone(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// fallbackIPs are this server's addresses when admin.public_ips is not set: the bind address
// when it is a specific one, else the global addresses of the network interfaces.
func (s *Server) fallbackIPs() []net.IP {
	if ip := net.ParseIP(s.opts.Bind); ip != nil && !ip.IsUnspecified() {
		return []net.IP{ip}
	}
	return s.opts.InterfaceIPs()
}

func (s *Server) dkimKeys(ctx context.Context, domain string) ([]admin.DKIMKey, error) {
	keys, err := mailauth.Keys(ctx, s.store, domain)
	if err != nil {
		return nil, err
	}
	out := make([]admin.DKIMKey, len(keys))
	for i, k := range keys {
		out[i] = admin.DKIMKey{Selector: k.Selector, TXT: k.TXT()}
	}
	return out, nil
}

func (s *Server) certStatus() admin.CertStatus {
	st := s.certs.Status()
	out := admin.CertStatus{Hostname: st.Hostname, Source: string(st.Source), Issuer: st.Issuer, NotAfter: st.NotAfter,
		Directory: st.Directory, LastError: st.LastError}
	for _, h := range st.Hosts {
		out.Hosts = append(out.Hosts, admin.CertHost{Name: h.Name, Source: string(h.Source), State: h.State, Detail: h.Detail,
			LastError: h.LastError, NotAfter: h.NotAfter})
	}
	return out
}

// hostnameChanged follows a hostname set by the setup wizard or the settings page: outbound EHLO,
// Received: lines, Authentication-Results and the certificate manager use the new name at once.
// The SMTP and POP3 greetings take it at the next start (they were given the name then).
func (s *Server) hostnameChanged(ctx context.Context, host string) {
	s.hostname.Store(&host)
	cfg, err := s.certConfig(ctx, host)
	if err == nil {
		err = s.certs.Reconfigure(ctx, cfg)
	}
	if err != nil {
		s.log.Error("certificates for the new hostname", "hostname", host, "err", err)
		return
	}
	s.log.Info("hostname changed; restart mailstead so mail greetings use it too", "hostname", host)
}
