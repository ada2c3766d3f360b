package smtp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/connlimit"
	"mailstead/message"
	"mailstead/store"
)

// Reply is an SMTP reply with its RFC 3463 enhanced status code.
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string
}

func (r *Reply) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

func (r *Reply) smtpError() *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: r.Code, EnhancedCode: gosmtp.EnhancedCode(r.Enhanced), Message: r.Text}
}

func reply(code int, e1, e2, e3 int, text string) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{e1, e2, e3}, Message: text}
}

var (
	errNotSetUp     = reply(451, 4, 3, 2, "This server is not set up yet; try again later")
	errRelayDenied  = reply(550, 5, 7, 1, "Relaying denied: that domain is not served here")
	errUnknownUser  = reply(550, 5, 1, 1, "No such user here")
	errBadRcpt      = reply(553, 5, 1, 3, "Recipient address syntax not accepted")
	errNeedUTF8     = reply(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8")
	errTempStore    = reply(451, 4, 3, 0, "Temporary local problem, please try again later")
	errTooManyFails = reply(421, 4, 7, 0, "Too many errors, closing connection")
)

// Inbound is a message as received, before our trace headers, for inspection and logs.
type Inbound struct {
	ID       string
	RemoteIP net.IP
	Helo     string
	MailFrom string
	Rcpts    []string
	Data     []byte // CRLF-normalised, as the client sent it
	TLS      bool
	UTF8     bool
}

// Verdict is what inspection decided for an inbound message.
type Verdict struct {
	Reject *Reply // refuse the message with this reply (4xx defers, 5xx rejects)
	Junk   bool   // deliver into the recipients' Junk mailboxes
	Header string // header lines to prepend (Authentication-Results), CRLF-terminated
	Data   []byte // the message with forged headers removed; nil keeps Inbound.Data
	Attrs  []any  // extra attributes for the transaction's log line
}

type recipient struct {
	addr     string
	accounts []int64
	remote   bool
}

// session is one SMTP connection's state (RFC 5321 §4.1.4 command order is go-smtp's job).
type session struct {
	srv    *Server
	conn   *gosmtp.Conn
	idle   *idleConn
	ip     net.IP
	errors int

	from  string
	opts  gosmtp.MailOptions
	rcpts []recipient
}

func (s *Server) newSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	sess := &session{srv: s, conn: c, ip: net.ParseIP(connlimit.RemoteIP(c.Conn().RemoteAddr()))}
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sess.idle, _ = nc.(*idleConn)
	return sess, nil
}

func (s *session) Reset() {
	s.from = ""
	s.opts = gosmtp.MailOptions{}
	s.rcpts = nil
}

func (s *session) Logout() error { return nil }

// fail counts a rejected command and ends sessions that keep failing (harvesting, probing).
func (s *session) fail(err *gosmtp.SMTPError) error {
	s.errors++
	if max := s.srv.cfg.Limits.MaxErrors; max > 0 && s.errors > max {
		s.srv.cfg.Logger.Warn("smtp too many errors", "ip", s.ip.String(), "helo", s.conn.Hostname())
		go func() { time.Sleep(100 * time.Millisecond); s.conn.Close() }()
		return errTooManyFails
	}
	return err
}

func (s *session) Mail(from string, opts *gosmtp.MailOptions) error {
	s.Reset()
	if opts != nil {
		s.opts = *opts
	}
	if !s.opts.UTF8 && !isASCII(from) {
		return s.fail(errNeedUTF8)
	}
	if from != "" {
		if _, _, err := store.SplitAddress(from); err != nil {
			return s.fail(reply(553, 5, 1, 7, "Sender address syntax not accepted"))
		}
	}
	if check := s.srv.cfg.CheckMailFrom; check != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if r := check(ctx, from); r != nil {
			if r.Code >= 500 {
				return s.fail(r.smtpError())
			}
			return r.smtpError()
		}
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	ctx := context.Background()
	if !s.opts.UTF8 && !isASCII(to) {
		return s.fail(errNeedUTF8)
	}
	local, domain, err := splitRecipient(to)
	if err != nil {
		return s.fail(errBadRcpt)
	}
	ids, err := s.localAccounts(ctx, local, domain)
	switch {
	case errors.Is(err, store.ErrNotOurDomain):
		if doms, derr := s.srv.cfg.Store.Domains(ctx); derr == nil && len(doms) == 0 {
			return errNotSetUp
		}
		return s.fail(errRelayDenied)
	case errors.Is(err, store.ErrUnknownUser):
		return s.fail(errUnknownUser)
	case err != nil:
		s.srv.cfg.Logger.Error("smtp recipient lookup", "rcpt", to, "err", err)
		return errTempStore
	}
	addr := joinAddress(local, domain)
	for _, r := range s.rcpts {
		if r.addr == addr {
			return nil // RFC 5321 §3.3: a repeated recipient gets one copy
		}
	}
	s.rcpts = append(s.rcpts, recipient{addr: addr, accounts: ids})
	return nil
}

// splitRecipient splits a RCPT TO address; the bare "Postmaster" of RFC 5321 §4.1.1.3 (which
// go-smtp passes through without a domain) comes back as local part "postmaster", domain "".
func splitRecipient(to string) (local, domain string, err error) {
	if strings.EqualFold(to, "postmaster") {
		return "postmaster", "", nil
	}
	return store.SplitAddress(to)
}

func joinAddress(local, domain string) string {
	if domain == "" {
		return local
	}
	return local + "@" + domain
}

// localAccounts resolves a recipient in one of our domains to the accounts that receive it.
// postmaster@ each of our domains, and the bare Postmaster, always resolve, whatever aliases
// exist (RFC 5321 §4.5.1): to the domain's admins (store.Postmasters).
func (s *session) localAccounts(ctx context.Context, local, domain string) ([]int64, error) {
	if local != "postmaster" {
		return s.srv.cfg.Store.LookupRecipient(ctx, local, domain)
	}
	if domain != "" {
		ok, err := s.srv.cfg.Store.IsLocalDomain(ctx, domain)
		if err != nil {
			return nil, fmt.Errorf("postmaster@%s: %w", domain, err)
		}
		if !ok {
			return nil, fmt.Errorf("postmaster@%s: %w", domain, store.ErrNotOurDomain)
		}
	}
	return s.srv.cfg.Store.Postmasters(ctx, domain)
}

func (s *session) Data(r io.Reader) error {
	if s.idle != nil {
		s.idle.inData.Store(true)
		defer s.idle.inData.Store(false)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		var se *gosmtp.SMTPError
		if errors.As(err, &se) {
			return se // too large: go-smtp reads on to the final dot before replying
		}
		return reply(451, 4, 4, 2, "Message transfer interrupted")
	}
	in := &Inbound{
		ID:       newID(),
		RemoteIP: s.ip,
		Helo:     s.conn.Hostname(),
		MailFrom: s.from,
		Data:     message.NormalizeCRLF(raw),
		UTF8:     s.opts.UTF8,
	}
	_, in.TLS = s.conn.TLSConnectionState()
	for _, rc := range s.rcpts {
		in.Rcpts = append(in.Rcpts, rc.addr)
	}
	return s.deliver(in)
}

// deliver inspects, adds trace headers and commits the message. It returns nil (250) only once the
// store has committed and synced every copy.
func (s *session) deliver(in *Inbound) error {
	ctx := context.Background()
	log := s.srv.cfg.Logger
	attrs := []any{"id", in.ID, "ip", in.RemoteIP.String(), "helo", in.Helo, "mail_from", in.MailFrom,
		"rcpts", strings.Join(in.Rcpts, ","), "size", len(in.Data)}
	var verdict Verdict
	if s.srv.cfg.Inspect != nil {
		v, err := s.srv.cfg.Inspect(ctx, in)
		if err != nil {
			log.Error("smtp inspect", append(attrs, "err", err)...)
			return errTempStore
		}
		verdict = v
		attrs = append(attrs, v.Attrs...)
		if v.Reject != nil {
			log.Info("smtp rejected", append(attrs, "reply", v.Reject.Error())...)
			return v.Reject.smtpError()
		}
	}
	body := in.Data
	if verdict.Data != nil {
		body = verdict.Data
	}
	data := s.withTrace(in, verdict.Header, body)
	d := &store.Delivery{MailFrom: in.MailFrom, Data: data}
	anyJunk := verdict.Junk
	for _, rc := range s.rcpts {
		for _, id := range rc.accounts {
			f := s.file(ctx, id, data)
			f.Junk = f.Junk || verdict.Junk
			anyJunk = anyJunk || f.Junk
			use := ""
			if f.Junk {
				use = `\Junk`
			}
			d.Local = append(d.Local, store.LocalRecipient{
				AccountID:  id,
				SpecialUse: use,
				Prefix:     []byte("Return-Path: <" + in.MailFrom + ">\r\nDelivered-To: " + rc.addr + "\r\n" + f.Header),
			})
		}
	}
	if _, err := s.srv.cfg.Store.Deliver(ctx, d); err != nil {
		return s.srv.storeFailed(log, attrs, err)
	}
	log.Info("smtp delivered", append(attrs, "junk", anyJunk)...)
	if s.srv.cfg.Delivered != nil {
		s.srv.cfg.Delivered(in, 0)
	}
	return nil
}

// storeFailed is the reply to a delivery the store did not commit: a local recipient over its
// quota (the store's one quota check) is 552 5.2.2, or 452 4.2.2 by setting; anything else is
// a temporary local problem.
func (s *Server) storeFailed(log *slog.Logger, attrs []any, err error) error {
	if errors.Is(err, store.ErrOverQuota) {
		r := reply(552, 5, 2, 2, "Mailbox full: a recipient is over its storage quota")
		if s.cfg.OverQuotaTemporary {
			r = reply(452, 4, 2, 2, "Mailbox full: a recipient is over its storage quota, try again later")
		}
		log.Info("smtp rejected", append(attrs, "reply", r.Error(), "err", err)...)
		return r
	}
	log.Error("smtp store", append(attrs, "err", err)...)
	return errTempStore
}

// file asks the junk filter, if any, where one account's copy goes.
func (s *session) file(ctx context.Context, accountID int64, data []byte) Filing {
	if s.srv.cfg.Classify == nil {
		return Filing{}
	}
	return s.srv.cfg.Classify(ctx, accountID, data)
}

// withTrace prepends the RFC 5321 §4.4 Received: line and any inspection headers.
func (s *session) withTrace(in *Inbound, extra string, body []byte) []byte {
	h := traceHeader{helo: in.Helo, ip: in.RemoteIP.String(), by: s.srv.cfg.Hostname(), id: in.ID, at: time.Now()}
	h.with = "ESMTP"
	if in.UTF8 {
		h.with = "UTF8SMTP" // RFC 6531 §3.7.3
	}
	if s.srv.srv.LMTP {
		h.with = "LMTP" // RFC 3848 §2
		if in.UTF8 {
			h.with = "UTF8LMTP" // RFC 6531 §3.7.3
		}
	}
	if cs, ok := s.conn.TLSConnectionState(); ok {
		h.with += "S" // RFC 3848
		h.tls = fmt.Sprintf("using %s with cipher %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	}
	if len(in.Rcpts) == 1 {
		h.forRcpt = in.Rcpts[0]
	}
	trace := h.String()
	out := make([]byte, 0, len(extra)+len(trace)+len(body))
	out = append(out, extra...)
	out = append(out, trace...)
	return append(out, body...)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func newID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
