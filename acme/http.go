package acme

import (
	"net"
	"net/http"
	"strconv"
)

// HTTPHandler returns the handler for port 80 (plus offset). It answers
// ACME HTTP-01 challenges (RFC 8555 section 8.3) under
// /.well-known/acme-challenge/ and hands every other request to fallback.
// Calling it enables HTTP-01 as the second challenge type after TLS-ALPN-01.
//
// With a nil fallback every other request is redirected to HTTPS (see
// RedirectHandler). A server that must answer some paths over plain HTTP
// (autoconfig's config-v1.1.xml, which Thunderbird fetches over http) passes
// a mux that serves those paths and sends the rest to RedirectHandler; it
// must not serve anything that needs TLS.
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	m.http01.Store(true)
	if fallback == nil {
		fallback = m.RedirectHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The solver of the current settings; autocert sends what is not a
		// challenge to fallback.
		m.setup().solver.HTTPHandler(fallback).ServeHTTP(w, r)
	})
}

// RedirectHandler redirects GET and HEAD to the same host and path over
// HTTPS (on Config.HTTPSPort when that is not 443) and refuses other methods,
// whose bodies would already have crossed the network in clear text.
func (m *Manager) RedirectHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := m.setup()
		port := s.cfg.HTTPSPort
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "Use HTTPS", http.StatusBadRequest)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			host = s.hostname
		}
		if port != 0 && port != 443 {
			host = net.JoinHostPort(host, strconv.Itoa(port))
		} else if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusFound)
	})
}
