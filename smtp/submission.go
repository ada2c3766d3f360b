package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"mailstead/loginlimit"
	"mailstead/mailauth"
	"mailstead/message"
	"mailstead/scram"
	"mailstead/store"
)

// SubmissionConfig is what message submission (RFC 6409, ports 587 and 465) adds to Config.
type SubmissionConfig struct {
	// Sign returns the DKIM-Signature header lines for a submitted message, read once from msg
	// (the server passes mailauth.Signer.SignStream); header is its header section. Nil sends mail
	// unsigned.
	Sign func(ctx context.Context, header []byte, msg io.Reader) ([]byte, error)
	// Logins is the server-wide failed-login budget, shared with IMAP, POP3 and the web; nil
	// gives this server a limiter of its own.
	Logins *loginlimit.Limiter
}

var (
	errAuthRequired  = reply(530, 5, 7, 0, "Authentication required")
	errNotYours      = reply(553, 5, 7, 1, "Sender address not owned by the authenticated user")
	errNotYourFrom   = reply(553, 5, 7, 1, "From:, Sender: or Resent-From: shows an address not owned by the authenticated user")
	errNoFrom        = reply(550, 5, 7, 1, "Message must have exactly one From: field with a valid address (RFC 5322 section 3.6)")
	errAuthTooMany   = reply(454, 4, 7, 0, "Too many failed logins, try again later")
	errAuthTemporary = reply(454, 4, 7, 0, "Temporary authentication failure, try again")
)

// submission is the state shared by the sessions of one submission server.
type submission struct {
	cfg SubmissionConfig
}

// NewSubmission returns the server for ports 587 (Serve: STARTTLS, then AUTH) and 465 (ServeTLS:
// implicit TLS, RFC 8314). AUTH PLAIN and LOGIN are offered only under TLS (go-smtp withholds AUTH
// before it); nothing is accepted before AUTH; an authenticated user relays anywhere, but only as
// an address of their own.
func NewSubmission(cfg Config, sub SubmissionConfig) *Server {
	if sub.Logins == nil {
		sub.Logins = loginlimit.New(loginlimit.Config{})
	}
	s := newServer(cfg)
	shared := &submission{cfg: sub}
	s.srv = s.goSMTP(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		base, _ := s.newSession(c)
		sess := base.(*session)
		sess.sub = shared
		return &subSession{session: sess}, nil
	}), s.cfg.TLSConfig)
	s.srv.EnableLegacyAUTH = true // "AUTH=PLAIN LOGIN" too, for clients that read only that form
	return s
}

// subSession is one submission connection: the MX session with AUTH, and its own MAIL and RCPT
// policy (AUTH first, own addresses only, remote recipients allowed). DATA is the session's.
type subSession struct {
	*session
}

// AuthMechanisms lists SCRAM-SHA-256 (RFC 7677; -PLUS with channel binding, RFC 5802 §6, on
// TLS only), PLAIN (RFC 4616) and LOGIN (still what many phone clients use). go-smtp shows
// them only under TLS.
func (s *subSession) AuthMechanisms() []string {
	m := []string{scram.SHA256, sasl.Plain, sasl.Login}
	if s.binding() != nil {
		m = append([]string{scram.SHA256Plus}, m...)
	}
	return m
}

// binding is the connection's channel binding, nil without TLS.
func (s *subSession) binding() scram.Binding {
	cs, ok := s.conn.TLSConnectionState()
	if !ok {
		return nil
	}
	cert, _ := scram.ServerCertificate(s.srv.cfg.TLSConfig, cs)
	return scram.TLSBinding(cs, cert)
}

func (s *subSession) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case scram.SHA256, scram.SHA256Plus:
		return s.scramServer(mech == scram.SHA256Plus), nil
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && !strings.EqualFold(identity, user) {
				return reply(535, 5, 7, 8, "Authorization identity must be the user's own")
			}
			return s.login(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: s.login}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

// login checks credentials within the shared failed-login budget (RFC 4954 §6: 454 4.7.0 when
// over it, without checking the password) and logs each failure in one stable line for fail2ban:
//
//	level=WARN msg="auth failed" proto=smtp ip=192.0.2.7 user=alice@example.com
func (s *subSession) login(user, pass string) error {
	ctx := context.Background()
	attempt, err := s.sub.cfg.Logins.Begin(loginlimit.Mail, s.ip.String(), user)
	if err != nil {
		return errAuthTooMany
	}
	acct, err := s.srv.cfg.Store.Authenticate(ctx, user, pass)
	if err != nil {
		if !errors.Is(err, store.ErrAuthFailed) {
			attempt.Cancel()
			if !errors.Is(err, store.ErrPasswordBusy) {
				s.srv.cfg.Logger.Error("smtp authentication error", "ip", s.ip.String(), "user", user, "err", err)
			}
			return errAuthTemporary
		}
		attempt.Failed()
		s.sub.cfg.Logins.LogFailure(s.srv.cfg.Logger, "smtp", s.ip.String(), strings.ToLower(user))
		return gosmtp.ErrAuthFailed
	}
	attempt.Succeeded()
	return s.loggedIn(acct)
}

// scramServer runs SCRAM-SHA-256(-PLUS) within the same failed-login budget and log line as
// PLAIN and LOGIN. A wrong proof or a channel binding that does not match is 535 5.7.8.
func (s *subSession) scramServer(plus bool) sasl.Server {
	ctx := context.Background()
	var attempt *loginlimit.Attempt
	var acct store.Account
	srv := &scram.Server{Plus: plus, Binding: s.binding()}
	srv.Lookup = func(user string) (scram.Credentials, error) {
		a, err := s.sub.cfg.Logins.Begin(loginlimit.Mail, s.ip.String(), user)
		if err != nil {
			return scram.Credentials{}, errAuthTooMany
		}
		attempt = a
		var creds scram.Credentials
		if acct, creds, err = s.srv.cfg.Store.SCRAMCredentials(ctx, user); err != nil {
			attempt.Cancel()
			s.srv.cfg.Logger.Error("smtp scram credentials", "ip", s.ip.String(), "user", user, "err", err)
			return creds, errAuthTemporary
		}
		return creds, nil
	}
	srv.Verified = func(string, int) error {
		attempt.Succeeded()
		return s.loggedIn(acct)
	}
	srv.Failed = func(user string) {
		if attempt != nil {
			attempt.Failed()
		}
		s.sub.cfg.Logins.LogFailure(s.srv.cfg.Logger, "smtp", s.ip.String(), strings.ToLower(user))
	}
	return saslReplies{srv}
}

// saslReplies gives SCRAM's errors their SMTP replies (RFC 4954 §6).
type saslReplies struct{ sasl.Server }

func (r saslReplies) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := r.Server.Next(resp)
	var se *gosmtp.SMTPError
	switch {
	case err == nil || errors.As(err, &se):
	case errors.Is(err, scram.ErrFailed):
		err = gosmtp.ErrAuthFailed
	default:
		err = reply(501, 5, 5, 2, "Malformed SCRAM message")
	}
	return ch, done, err
}

// loggedIn makes acct the session's user, with the addresses it may send as.
func (s *subSession) loggedIn(acct store.Account) error {
	ctx := context.Background()
	owned, err := s.srv.cfg.Store.OwnedAddresses(ctx, acct.ID)
	if err != nil {
		s.srv.cfg.Logger.Error("smtp owned addresses", "user", acct.Address, "err", err)
		return errAuthTemporary
	}
	s.owned = map[string]bool{}
	for _, a := range owned {
		s.owned[a] = true
	}
	s.account = &acct
	return nil
}

// owns reports whether addr is the account's address or one of its aliases.
func (s *session) owns(addr string) bool {
	c, err := store.CanonicalAddress(addr)
	return err == nil && s.owned[c]
}

func (s *subSession) Mail(from string, opts *gosmtp.MailOptions) error {
	if s.account == nil {
		return s.fail(errAuthRequired) // RFC 6409 §4.3 / RFC 4954 §6
	}
	if err := s.session.Mail(from, opts); err != nil {
		return err
	}
	// RFC 6409 §6.1: the envelope sender must be one the user may use; the null sender is a
	// server's, never a user's.
	if from == "" || !s.owns(from) {
		s.session.Reset()
		return s.fail(errNotYours)
	}
	return nil
}

func (s *subSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	if s.account == nil {
		return s.fail(errAuthRequired)
	}
	ctx := context.Background()
	if !s.opts.UTF8 && !isASCII(to) {
		return s.fail(errNeedUTF8)
	}
	local, domain, err := splitRecipient(to)
	if err != nil {
		return s.fail(errBadRcpt)
	}
	addr := joinAddress(local, domain)
	for _, r := range s.rcpts {
		if r.addr == addr {
			return nil
		}
	}
	ids, err := s.localAccounts(ctx, local, domain)
	switch {
	case errors.Is(err, store.ErrNotOurDomain):
		// Relay: the authenticated user may send anywhere (RFC 6409 §4.2); the queue delivers it.
		s.rcpts = append(s.rcpts, recipient{addr: addr, remote: true, dsn: recipientDSN(s.opts, opts)})
		return nil
	case errors.Is(err, store.ErrUnknownUser):
		return s.fail(errUnknownUser)
	case err != nil:
		s.srv.cfg.Logger.Error("smtp recipient lookup", "rcpt", to, "err", err)
		return errTempStore
	}
	s.rcpts = append(s.rcpts, recipient{addr: addr, accounts: ids, dsn: recipientDSN(s.opts, opts)})
	return nil
}

// submit is the submission path (RFC 6409): the From: header must be the user's, the header
// is completed, the message signed, then delivered locally and queued for remote recipients in
// one commit.
func (s *session) submit(ctx context.Context, t *transaction) error {
	if err := s.checkIdentity(t); err != nil {
		return err
	}
	t.header = s.completeHeader(t.header, t.env.ID)
	if err := s.signDKIM(ctx, t); err != nil {
		return err
	}
	if err := s.deliver(ctx, t); err != nil {
		return err
	}
	remote := 0
	for _, rc := range t.env.Rcpts {
		if rc.Remote {
			remote++
		}
	}
	s.srv.cfg.MailLog.Submitted(s.srv.cfg.Logger, s.event(t, ""), append(t.attrs, "remote", remote)...)
	s.delivered(t, remote)
	return nil
}

// checkIdentity applies RFC 6409 §6.1 and RFC 7489 to the header: From (and Sender, Resent-From,
// Resent-Sender when present) is what the reader sees and what DMARC aligns with, so every
// address they show, in the address itself or written into a display name or comment, must be
// one the user owns; and RFC 5322 §3.6 wants exactly one From field.
func (s *session) checkIdentity(t *transaction) error {
	hdr, _ := message.ParseHeader(t.header)
	reject := func(r *gosmtp.SMTPError, why string) error {
		s.srv.cfg.MailLog.SubmissionRejected(s.srv.cfg.Logger, s.event(t, why), append(t.attrs, "reason", why)...)
		return r
	}
	froms, err := hdr.Addresses("From")
	if err != nil || len(froms) == 0 || hdr.Count("From") != 1 {
		return reject(errNoFrom, "no single From field")
	}
	for _, name := range []string{"From", "Sender", "Resent-From", "Resent-Sender"} {
		for _, v := range hdr.Values(name) {
			for _, a := range mailauth.ShownAddresses(v) {
				if !s.owns(a) {
					return reject(errNotYourFrom, name+" shows "+a+", not owned")
				}
			}
		}
	}
	return nil
}

// signDKIM adds the DKIM signatures of the From domain on top (read from the spool once).
func (s *session) signDKIM(ctx context.Context, t *transaction) error {
	if s.sub.cfg.Sign == nil {
		return nil
	}
	c := t.content()
	sig, err := s.sub.cfg.Sign(ctx, t.header, io.NewSectionReader(c, 0, c.Size()))
	if err != nil {
		s.srv.cfg.Logger.Error("smtp dkim signing", append(t.attrs, "err", err)...)
		return errTempStore
	}
	t.top = append(t.top, sig...)
	return nil
}

// completeHeader adds the Date and Message-ID fields a submission server supplies when the
// client left them out (RFC 6409 §8.2, §8.3).
func (s *session) completeHeader(msg []byte, id string) []byte {
	hdr, _ := message.ParseHeader(msg)
	var add string
	if !hdr.Has("Date") {
		add += "Date: " + time.Now().Format(time.RFC1123Z) + "\r\n"
	}
	if !hdr.Has("Message-ID") {
		add += fmt.Sprintf("Message-ID: <%s.%s@%s>\r\n", id, newID(), s.srv.cfg.Hostname())
	}
	if add == "" {
		return msg
	}
	return append([]byte(add), msg...)
}

// loginServer is the server side of the LOGIN mechanism (draft-murchison-sasl-login), which
// go-sasl lacks: the server asks "Username:" and then "Password:", each answer base64 (go-smtp
// decodes it). A client may send the user name as the initial response.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if resp == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, true, errors.New("LOGIN: unexpected response")
}
