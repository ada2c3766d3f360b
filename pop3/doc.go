// Package pop3 owns the POP3 service: the RFC 1939 state machine (AUTHORIZATION,
// TRANSACTION, UPDATE), CAPA (RFC 2449), STLS (RFC 2595), SASL PLAIN and LOGIN
// (RFC 5034), connection limits and idle timeouts; failed logins count against
// a loginlimit.Limiter shared with the other protocols. It
// must never speak SQL or know how mail is stored: it reaches the INBOX only
// through the Backend and Maildrop interfaces, and it never logs a password.
//
// # Wiring
//
// One Server serves both ports so that the maildrop lock is shared:
//
//	srv, err := pop3.NewServer(pop3.Config{Backend: b, TLSConfig: tlsConf, Logger: log})
//	go srv.Serve(l110)    // plain, offers STLS (RFC 2595)
//	go srv.ServeTLS(l995) // implicit TLS
//	...
//	srv.Shutdown(ctx)
//
// # Log lines
//
// Every failed authentication attempt (USER/PASS, AUTH PLAIN, AUTH LOGIN,
// including malformed SASL exchanges) writes exactly one record at level Warn
// with the message "auth failed" and exactly three attributes, in this order:
// proto (always "pop3"), ip (the client IP without port) and user (the name
// the client tried, possibly empty). With slog.NewTextHandler that is:
//
//	time=2026-11-29T10:00:00.000Z level=WARN msg="auth failed" proto=pop3 ip=192.0.2.7 user=alice@example.com
//
// A fail2ban filter can match it with:
//
//	failregex = level=WARN msg="auth failed" proto=pop3 ip=<HOST> user=
//
// The user value is quoted by slog when it contains spaces or quotes, so a
// client cannot forge the fields. A successful login logs msg "login" at Info
// with the same three attributes.
package pop3
