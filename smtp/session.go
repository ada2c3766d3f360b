package smtp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/connlimit"
	"mailstead/delivery"
	"mailstead/junk"
	"mailstead/mailauth"
	"mailstead/maillog"
	"mailstead/message"
	"mailstead/store"
)

// smtpError turns mailauth's reply (the one reply type: code, enhanced code, text) into
// go-smtp's.
func smtpError(r mailauth.Reply) *gosmtp.SMTPError {
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

type recipient struct {
	addr     string
	accounts []int64
	remote   bool
	dsn      store.DSN // RFC 3461 parameters (dsn.go)
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

	// Submission only: nil on port 25.
	sub     *submission
	account *store.Account
	owned   map[string]bool
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
	if max := s.srv.Limits().MaxErrors; max > 0 && s.errors > max {
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
	if s.sub == nil && s.srv.auth.Load() != nil {
		// Port 25: the MAIL FROM domain must be able to receive replies.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if r := s.srv.auth.Load().CheckSender(ctx, from); r != nil {
			if r.Code >= 500 {
				return s.fail(smtpError(*r))
			}
			return smtpError(*r)
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
	s.rcpts = append(s.rcpts, recipient{addr: addr, accounts: ids, dsn: recipientDSN(s.opts, opts)})
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

// Data receives the message of one transaction, for DATA and BDAT alike (go-smtp hands BDAT
// chunks over as one stream), on port 25 and on submission: it spools the message, runs the
// listener's policy steps and delivers it. It returns nil (250) only once the store has
// committed and synced every copy and queue entry.
func (s *session) Data(r io.Reader) error {
	if s.sub != nil && s.account == nil {
		return errAuthRequired
	}
	if s.idle != nil {
		s.idle.inData.Store(true)
		defer s.idle.inData.Store(false)
	}
	body, err := s.srv.spool.Receive(r, s.srv.cfg.Limits.MaxMessageSize)
	if err != nil {
		if err == errTransfer {
			s.srv.cfg.Logger.Info("smtp transfer interrupted", "ip", s.ip.String(), "helo", s.conn.Hostname())
		}
		return err
	}
	defer body.Close() // the spool file goes on every path out
	t, err := s.newTransaction(body)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if s.sub != nil {
		return s.submit(ctx, t)
	}
	return s.receive(ctx, t)
}

// transaction is one message between DATA and the reply: the envelope the delivery function
// takes, the spooled body, and what the policy steps decided. Steps read and change it in turn.
type transaction struct {
	env    delivery.Envelope
	body   *Body
	header []byte // the header section as received; steps may rewrite it
	orig   int    // length of the header section as received, in body
	junk   bool   // deliver into the recipients' Junk mailboxes
	top    []byte // fields to put above the Received: line
	attrs  []any  // the transaction's log attributes
}

func (s *session) newTransaction(body *Body) (*transaction, error) {
	header, err := message.ReadHeaderAt(body, body.Size())
	if err != nil {
		s.srv.cfg.Logger.Error("smtp read spool", "ip", s.ip.String(), "err", err)
		return nil, errTempStore
	}
	t := &transaction{body: body, header: header, orig: len(header)}
	t.env = delivery.Envelope{ID: newID(), MailFrom: s.from, Trace: s.trace()}
	var rcpts []string
	for _, rc := range s.rcpts {
		t.env.Rcpts = append(t.env.Rcpts, delivery.Recipient{
			Address: rc.addr, Remote: rc.remote, Accounts: rc.accounts,
			RequireTLS: s.opts.RequireTLS, SMTPUTF8: s.opts.UTF8, EightBit: s.opts.Body == gosmtp.Body8BitMIME,
			DSN: rc.dsn,
		})
		rcpts = append(rcpts, rc.addr)
	}
	t.attrs = []any{"id", t.env.ID, "ip", s.ip.String()}
	if s.account != nil {
		t.attrs = append(t.attrs, "user", s.account.Address)
	} else {
		t.attrs = append(t.attrs, "helo", s.conn.Hostname())
	}
	t.attrs = append(t.attrs, "mail_from", s.from, "rcpts", strings.Join(rcpts, ","), "size", body.Size())
	return t, nil
}

// trace describes this connection for the Received: line (RFC 5321 §4.4; the with keyword is
// RFC 3848's, UTF8SMTP RFC 6531 §3.7.3).
func (s *session) trace() *delivery.Trace {
	t := &delivery.Trace{Helo: s.conn.Hostname(), IP: s.ip.String(), By: s.srv.cfg.Hostname(), At: time.Now(), With: "ESMTP"}
	if s.opts.UTF8 {
		t.With = "UTF8SMTP"
	}
	if s.srv.srv.LMTP {
		t.With = "LMTP" // RFC 3848 §2
		if s.opts.UTF8 {
			t.With = "UTF8LMTP" // RFC 6531 §3.7.3
		}
	}
	if cs, ok := s.conn.TLSConnectionState(); ok {
		t.With += "S"
		t.TLS = fmt.Sprintf("using %s with cipher %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	}
	if s.account != nil {
		t.With += "A"
	}
	return t
}

// receive is port 25's path: authenticate the sender, then deliver.
func (s *session) receive(ctx context.Context, t *transaction) error {
	log := s.srv.cfg.Logger
	if err := s.checkAuth(ctx, t); err != nil {
		return err
	}
	if err := s.classifyJunk(ctx, t); err != nil {
		return err
	}
	if err := s.deliver(ctx, t); err != nil {
		return err
	}
	s.srv.cfg.MailLog.Received(log, s.event(t, ""), append(t.attrs, "junk", t.junk)...)
	s.delivered(t, 0)
	return nil
}

// checkAuth is the sender-authentication step (SPF, DKIM, DMARC, iprev, DNSBL: mailauth). It
// refuses or defers the message, or sends it to Junk, and replaces any Authentication-Results
// claiming to be ours with our own (RFC 8601 §5).
func (s *session) checkAuth(ctx context.Context, t *transaction) error {
	if s.srv.auth.Load() == nil {
		return nil
	}
	log := s.srv.cfg.Logger
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	checker := *s.srv.auth.Load()
	checker.Hostname = s.srv.cfg.Hostname() // the authserv-id follows a hostname changed while running
	// The header as received: t.header is still that, nothing has rewritten it yet.
	in := mailauth.Input{IP: s.ip, Helo: s.conn.Hostname(), MailFrom: s.from, Message: t.body, Header: t.header[:t.orig:t.orig]}
	for _, rc := range t.env.Rcpts {
		in.Rcpts = append(in.Rcpts, rc.Address)
	}
	res, err := checker.Check(ctx, in)
	if err != nil {
		log.Error("smtp inspect", append(t.attrs, "err", err)...)
		return errTempStore
	}
	for _, a := range res.LogAttrs(in) {
		switch a.Key {
		case "ip", "helo", "mail_from", "rcpts", "size": // the SMTP line has them already
		default:
			t.attrs = append(t.attrs, a)
		}
	}
	switch res.Action.Verdict {
	case mailauth.Reject, mailauth.TempFail:
		s.srv.cfg.MailLog.Rejected(log, s.event(t, res.Action.Reply.String()), append(t.attrs, "reply", res.Action.Reply.String())...)
		return smtpError(res.Action.Reply)
	case mailauth.Junk:
		t.junk = true
		for i := range t.env.Rcpts {
			t.env.Rcpts[i].Mailbox = `\Junk`
		}
	}
	t.header = mailauth.RemoveAuthResults(t.header, checker.Hostname)
	t.top = append(t.top, res.Header...)
	return nil
}

// classifyJunk is the junk filter's step: each local account's copy is filed by that account's
// model, on the message as it will be stored (our headers on top).
func (s *session) classifyJunk(ctx context.Context, t *transaction) error {
	if s.srv.cfg.Classify == nil {
		return nil
	}
	t.header = junk.RemoveHeader(t.header, junk.HeaderName) // only ours may say what the filter thought
	var sample []byte
	for i := range t.env.Rcpts {
		rc := &t.env.Rcpts[i]
		for _, id := range rc.Accounts {
			if sample == nil {
				var err error
				if sample, err = t.sample(ClassifyBytes); err != nil {
					s.srv.cfg.Logger.Error("smtp read spool", append(t.attrs, "err", err)...)
					return errTempStore
				}
			}
			f := s.srv.cfg.Classify(ctx, id, sample)
			c := delivery.Copy{Mailbox: rc.Mailbox, Header: f.Header}
			if f.Junk {
				c.Mailbox = `\Junk`
				t.junk = true
			}
			if rc.Copies == nil {
				rc.Copies = map[int64]delivery.Copy{}
			}
			rc.Copies[id] = c
		}
	}
	return nil
}

// sample returns the first n bytes of the message as it will be stored (without the trace).
func (t *transaction) sample(n int) ([]byte, error) {
	// Sized once: io.ReadAll would grow its buffer step by step for every message.
	m := t.message()
	buf := make([]byte, min(int64(n), m.Size()))
	got, err := m.ReadAt(buf, 0)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return buf[:got], err
}

// message is the message as it will be stored, below the trace line: t.top, the (possibly
// rewritten) header, then the rest of the spooled message as it arrived.
func (t *transaction) message() *message.Concat {
	return message.NewConcat(message.Bytes(t.top), t.content())
}

// content is the message less t.top.
func (t *transaction) content() *message.Concat {
	return message.NewConcat(message.Bytes(t.header), message.Section(t.body, int64(t.orig), t.body.Size()-int64(t.orig)))
}

// deliver hands the transaction to the delivery function: t.top, the Received: line, the
// (possibly rewritten) header, then the rest of the spooled message as it arrived.
func (s *session) deliver(ctx context.Context, t *transaction) error {
	msg := delivery.Message{Top: t.top, Body: t.content()}
	if _, err := s.srv.deliverer.Deliver(ctx, &t.env, msg); err != nil {
		return s.storeFailed(t, err)
	}
	return nil
}

// event is the transaction as a typed mail event (maillog), with the reply or reason detail.
func (s *session) event(t *transaction, detail string) maillog.Event {
	ev := maillog.Event{Via: "mx", MailFrom: s.from, Remote: s.ip.String(), Detail: detail}
	switch {
	case s.sub != nil:
		ev.Via = "submission"
	case s.srv.srv.LMTP:
		ev.Via = "lmtp"
	}
	for _, rc := range t.env.Rcpts {
		ev.Rcpts = append(ev.Rcpts, rc.Address)
	}
	return ev
}

// storeFailed is the reply to a delivery the store did not commit: a local recipient over its
// quota (the store's one quota check) is 552 5.2.2, or 452 4.2.2 by setting; anything else is
// a temporary local problem.
func (s *session) storeFailed(t *transaction, err error) error {
	log := s.srv.cfg.Logger
	if errors.Is(err, store.ErrOverQuota) {
		r := reply(552, 5, 2, 2, "Mailbox full: a recipient is over its storage quota")
		if s.srv.cfg.OverQuotaTemporary {
			r = reply(452, 4, 2, 2, "Mailbox full: a recipient is over its storage quota, try again later")
		}
		s.srv.cfg.MailLog.Rejected(log, s.event(t, r.Error()), append(t.attrs, "reply", r.Error(), "err", err)...)
		return r
	}
	log.Error("smtp store", append(t.attrs, "err", err)...)
	return errTempStore
}

// delivered tells the listener's owner (metrics, queue wake-up) of a committed message.
func (s *session) delivered(t *transaction, remote int) {
	if s.srv.cfg.Delivered == nil {
		return
	}
	in := &Delivered{ID: t.env.ID, RemoteIP: s.ip, MailFrom: s.from, Size: t.body.Size(),
		Header: t.header, NotifySuccess: notifySuccess(s.rcpts)}
	for _, rc := range t.env.Rcpts {
		in.Rcpts = append(in.Rcpts, rc.Address)
	}
	s.srv.cfg.Delivered(in, remote)
}

// Delivered describes a committed message to Config.Delivered.
type Delivered struct {
	ID       string
	RemoteIP net.IP
	MailFrom string
	Rcpts    []string
	Size     int64
	// Header is the message's header section as received, for reports about it.
	Header []byte
	// NotifySuccess lists the recipients delivered here that asked for a success report
	// (RFC 3461 NOTIFY=SUCCESS); the server sends it now that the copies are committed.
	NotifySuccess []NotifyRecipient
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
