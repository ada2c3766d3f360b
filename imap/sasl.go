package imap

import (
	"crypto/tls"
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"mailstead/loginlimit"
	"mailstead/scram"
	"mailstead/store"
)

// AuthenticateMechanisms lists SCRAM-SHA-256 (RFC 7677; -PLUS with channel binding, RFC 5802
// §6, only on TLS) and PLAIN (RFC 4616). imapserver shows them only where AUTHENTICATE is
// allowed (TLS, or loopback in dev mode).
func (s *session) AuthenticateMechanisms() []string {
	m := []string{scram.SHA256, sasl.Plain}
	if s.binding() != nil {
		m = append([]string{scram.SHA256Plus}, m...)
	}
	return m
}

// binding is the connection's channel binding, nil without TLS.
func (s *session) binding() scram.Binding {
	tc, ok := s.conn.NetConn().(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	cert, _ := scram.ServerCertificate(s.srv.cfg.TLSConfig, cs)
	return scram.TLSBinding(cs, cert)
}

// Authenticate runs PLAIN through Login, and SCRAM within the same failed-login budget and
// fail2ban line.
func (s *session) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && !strings.EqualFold(identity, username) {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed,
					Text: "Authorization identity must be the user's own"}
			}
			return s.Login(username, password)
		}), nil
	case scram.SHA256, scram.SHA256Plus:
		return s.scramServer(mech == scram.SHA256Plus), nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

func (s *session) scramServer(plus bool) sasl.Server {
	var attempt *loginlimit.Attempt
	var acct store.Account
	srv := &scram.Server{Plus: plus, Binding: s.binding()}
	srv.Lookup = func(user string) (scram.Credentials, error) {
		a, err := s.srv.cfg.Logins.Begin(loginlimit.Mail, s.ip, user)
		if err != nil {
			return scram.Credentials{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed logins, try again later"}
		}
		attempt = a
		ctx, cancel := s.ctx()
		defer cancel()
		var creds scram.Credentials
		if acct, creds, err = s.srv.st.SCRAMCredentials(ctx, user); err != nil {
			attempt.Cancel()
			s.srv.log.Error("imap scram credentials", "ip", s.ip, "user", user, "err", err)
			return creds, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Temporary failure, try again"}
		}
		return creds, nil
	}
	srv.Verified = func(string, int) error {
		attempt.Succeeded()
		return s.enterAuthenticated(acct)
	}
	srv.Failed = func(user string) {
		if attempt != nil {
			attempt.Failed()
		}
		s.srv.cfg.Logins.LogFailure(s.srv.log, "imap", s.ip, strings.ToLower(user))
	}
	return imapSASLErrors{srv}
}

// imapSASLErrors answers a failed SCRAM login as imapserver answers a failed LOGIN, and a
// malformed SCRAM message as BAD.
type imapSASLErrors struct{ sasl.Server }

func (e imapSASLErrors) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := e.Server.Next(resp)
	var ie *imap.Error
	switch {
	case err == nil || errors.As(err, &ie):
	case errors.Is(err, scram.ErrFailed):
		err = imapserver.ErrAuthFailed
	default:
		err = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Malformed SCRAM message"}
	}
	return ch, done, err
}
