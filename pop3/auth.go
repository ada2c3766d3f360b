package pop3

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"mailstead/loginlimit"
	"mailstead/scram"
)

const insecureAuthReply = "-ERR authentication requires TLS: use STLS or the POP3S port"

// cmdUser takes the name for PASS (RFC 1939 §7). The name is the rest of
// the line.
func (s *session) cmdUser(arg string) error {
	if !s.authAllowed() {
		return s.failCmd(insecureAuthReply)
	}
	if arg == "" {
		return s.failCmd("-ERR USER takes a name")
	}
	s.user = arg
	s.reply("+OK send PASS")
	return nil
}

// cmdPass completes USER/PASS. The password is the rest of the line, spaces
// included (RFC 1939 §7 allows a server to treat it so).
func (s *session) cmdPass(arg string) error {
	if !s.authAllowed() {
		return s.failCmd(insecureAuthReply)
	}
	if s.user == "" {
		return s.failCmd("-ERR USER first")
	}
	user := s.user
	s.user = ""
	return s.login(user, arg)
}

// cmdAuth runs a SASL exchange (RFC 5034): PLAIN (RFC 4616) with or without
// initial response, and LOGIN, which clients still use. AUTH without a
// mechanism lists the mechanisms, as older clients expect.
func (s *session) cmdAuth(arg string) error {
	if !s.authAllowed() {
		return s.failCmd(insecureAuthReply)
	}
	args := strings.Fields(arg)
	if len(args) == 0 {
		s.reply("+OK supported mechanisms follow")
		for _, m := range s.saslMechanisms() {
			s.reply(m)
		}
		s.reply(".")
		return nil
	}
	if len(args) > 2 {
		return s.failCmd("-ERR too many arguments")
	}
	var initial *string
	if len(args) == 2 {
		initial = &args[1]
	}
	switch strings.ToUpper(args[0]) {
	case "PLAIN":
		resp, err := s.saslStep("", initial)
		if err != nil {
			return s.saslError(err)
		}
		// authzid NUL authcid NUL passwd (RFC 4616 §2).
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 {
			return s.authFailed("")
		}
		authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
		if authz != "" && authz != user {
			return s.authFailed(user) // no logging in as someone else
		}
		return s.login(user, pass)
	case "LOGIN":
		user, err := s.saslStep("Username:", initial)
		if err != nil {
			return s.saslError(err)
		}
		pass, err := s.saslStep("Password:", nil)
		if err != nil {
			return s.saslError(err)
		}
		return s.login(string(user), string(pass))
	case scram.SHA256, scram.SHA256Plus:
		if b, ok := s.srv.cfg.Backend.(SCRAMBackend); ok && slices.Contains(s.saslMechanisms(), strings.ToUpper(args[0])) {
			return s.scramLogin(b, strings.ToUpper(args[0]) == scram.SHA256Plus, initial)
		}
	}
	return s.failCmd("-ERR unsupported SASL mechanism")
}

// saslMechanisms are the mechanisms AUTH takes here: SCRAM-SHA-256 when the backend has SCRAM
// credentials (RFC 7677; -PLUS, with channel binding, only on TLS), PLAIN and LOGIN.
func (s *session) saslMechanisms() []string {
	m := []string{"PLAIN", "LOGIN"}
	if _, ok := s.srv.cfg.Backend.(SCRAMBackend); ok {
		m = append([]string{scram.SHA256}, m...)
		if s.binding() != nil {
			m = append([]string{scram.SHA256Plus}, m...)
		}
	}
	return m
}

// binding is the connection's channel binding, nil without TLS.
func (s *session) binding() scram.Binding {
	tc, ok := s.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	cert, _ := scram.ServerCertificate(s.srv.cfg.TLSConfig, cs)
	return scram.TLSBinding(cs, cert)
}

// scramLogin runs a SCRAM exchange (RFC 5802 §5) within the same failed-login budget and log
// line as the other mechanisms, and enters TRANSACTION when the proof checks.
func (s *session) scramLogin(b SCRAMBackend, plus bool, initial *string) error {
	var attempt *loginlimit.Attempt
	busy := false
	srv := &scram.Server{Plus: plus, Binding: s.binding()}
	srv.Lookup = func(user string) (scram.Credentials, error) {
		a, err := s.srv.cfg.Logins.Begin(loginlimit.Mail, s.ip, user)
		if err != nil {
			busy = true
			return scram.Credentials{}, err
		}
		attempt = a
		creds, err := b.SCRAMCredentials(s.ctx, user)
		if err != nil {
			attempt.Cancel()
			attempt = nil
		}
		return creds, err
	}
	srv.Failed = func(user string) {
		if attempt != nil {
			attempt.Failed()
		}
	}
	challenge := ""
	for {
		resp, err := s.saslStep(challenge, initial)
		initial = nil
		if err != nil {
			if attempt != nil {
				attempt.Cancel()
			}
			return s.saslError(err)
		}
		if resp == nil {
			resp = []byte{}
		}
		ch, done, err := srv.Next(resp)
		switch {
		case errors.Is(err, scram.ErrFailed):
			return s.authFailedCounted(srv.User())
		case busy:
			return s.failCmd("-ERR [SYS/TEMP] too many failed logins, try again later")
		case err != nil && attempt == nil && srv.User() != "":
			s.log.Error("pop3 scram credentials", "proto", "pop3", "ip", s.ip, "user", srv.User(), "err", err)
			return s.failCmd("-ERR [SYS/TEMP] cannot check credentials, try again later")
		case err != nil:
			if attempt != nil {
				attempt.Cancel()
			}
			return s.failCmd("-ERR malformed SCRAM message")
		case done:
			attempt.Succeeded()
			md, err := b.OpenVerified(s.ctx, srv.User())
			return s.enterTransaction(srv.User(), md, err)
		}
		challenge = string(ch)
	}
}

var (
	errSASLCancelled = errors.New("authentication cancelled")
	errSASLBase64    = errors.New("invalid base64")
)

// saslStep returns the initial response when given, and otherwise sends the
// challenge and reads the client's response (RFC 5034 §4). "=" is an empty
// initial response; "*" cancels.
func (s *session) saslStep(challenge string, initial *string) ([]byte, error) {
	var line string
	if initial != nil {
		line = *initial
		if line == "=" {
			return nil, nil
		}
	} else {
		s.reply("+ " + base64.StdEncoding.EncodeToString([]byte(challenge)))
		var err error
		line, err = s.readLine(maxSASLLine)
		if err != nil {
			return nil, err
		}
	}
	if line == "*" {
		return nil, errSASLCancelled
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, errSASLBase64
	}
	return b, nil
}

func (s *session) saslError(err error) error {
	switch {
	case errors.Is(err, errSASLCancelled):
		return s.failCmd("-ERR authentication cancelled")
	case errors.Is(err, errSASLBase64):
		return s.authFailed("")
	case errors.Is(err, errLineTooLong):
		return s.failCmd("-ERR line too long")
	}
	return err
}

// login checks the credentials, takes the maildrop lock and the snapshot
// and enters TRANSACTION (RFC 1939 §4).
func (s *session) login(user, pass string) error {
	attempt, err := s.srv.cfg.Logins.Begin(loginlimit.Mail, s.ip, user)
	if err != nil {
		// Over the failed-login budget: the password is not checked at all.
		return s.failCmd("-ERR [SYS/TEMP] too many failed logins, try again later")
	}
	md, err := s.srv.cfg.Backend.Login(s.ctx, user, pass, s.raw.RemoteAddr())
	if errors.Is(err, ErrAuthFailed) {
		attempt.Failed()
		return s.authFailedCounted(user)
	}
	if err != nil {
		attempt.Cancel()
	} else {
		attempt.Succeeded()
	}
	return s.enterTransaction(user, md, err)
}

// enterTransaction takes the maildrop lock and the snapshot of a user whose login checked (or
// reports err from opening the maildrop) and enters TRANSACTION.
func (s *session) enterTransaction(user string, md Maildrop, err error) error {
	switch {
	case errors.Is(err, ErrInUse):
		s.reply("-ERR [IN-USE] maildrop is in use by another session")
		return nil
	case errors.Is(err, ErrBusy):
		// Expected under a login flood; an ERROR line per refusal would fill the disk.
		s.log.Debug("pop3 login busy", "proto", "pop3", "ip", s.ip, "user", user, "err", err)
		s.reply("-ERR [SYS/TEMP] server busy, try again")
		return nil
	case err != nil:
		s.log.Error("pop3 login backend", "proto", "pop3", "ip", s.ip, "user", user, "err", err)
		s.reply("-ERR [SYS/TEMP] cannot open maildrop, try again later")
		return nil
	}
	s.md, s.authedUser = md, user
	key := md.Key()
	if !s.srv.lock(key) {
		s.releaseMaildrop()
		s.reply("-ERR [IN-USE] maildrop is in use by another session")
		return nil
	}
	s.lockKey = key
	msgs, err := md.Messages(s.ctx)
	if err != nil {
		s.releaseMaildrop()
		if errors.Is(err, ErrInUse) {
			s.reply("-ERR [IN-USE] maildrop is in use by another session")
			return nil
		}
		s.log.Error("pop3 maildrop listing", "proto", "pop3", "ip", s.ip, "user", user, "err", err)
		s.reply("-ERR [SYS/TEMP] cannot open maildrop, try again later")
		return nil
	}
	for _, m := range msgs {
		if !validUIDL(m.UIDL) {
			s.log.Error("pop3 backend returned an invalid UIDL", "proto", "pop3", "user", user, "uidl", m.UIDL)
			break
		}
	}
	s.msgs, s.deleted = msgs, make([]bool, len(msgs))
	s.state = stateTransaction
	s.log.Info("login", "proto", "pop3", "ip", s.ip, "user", user)
	count, size := s.totals()
	s.reply(fmt.Sprintf("+OK maildrop has %d messages (%d octets)", count, size))
	return nil
}

// authFailed counts a failed login that never reached the backend (a malformed SASL exchange)
// against the shared budget, then answers as authFailedCounted does.
func (s *session) authFailed(user string) error {
	if attempt, err := s.srv.cfg.Logins.Begin(loginlimit.Mail, s.ip, user); err == nil {
		attempt.Failed()
	}
	return s.authFailedCounted(user)
}

// authFailedCounted logs the fail2ban line (see the package doc) and answers -ERR [AUTH]
// (RFC 3206, RFC 5034 §6); after MaxAuthFailures it closes the session.
func (s *session) authFailedCounted(user string) error {
	s.srv.cfg.Logins.LogFailure(s.log, "pop3", s.ip, user)
	s.authFails++
	if s.authFails >= s.srv.cfg.MaxAuthFailures {
		s.reply("-ERR [AUTH] authentication failed, closing connection")
		return errQuit
	}
	return s.failCmd("-ERR [AUTH] authentication failed")
}

// validUIDL checks a unique-id: 1 to 70 characters from 0x21 to 0x7E
// (RFC 1939 §7).
func validUIDL(uidl string) bool {
	if len(uidl) == 0 || len(uidl) > 70 {
		return false
	}
	for i := 0; i < len(uidl); i++ {
		if uidl[i] < 0x21 || uidl[i] > 0x7e {
			return false
		}
	}
	return true
}
