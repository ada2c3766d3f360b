package imap

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailstead/connlimit"
	"mailstead/loginlimit"
	"mailstead/store"
)

// opTimeout bounds one store operation of a command.
const opTimeout = 2 * time.Minute

// session is one IMAP connection.
type session struct {
	srv  *Server
	conn *imapserver.Conn
	ip   string

	account  store.Account
	loggedIn bool
	// authed is loggedIn for other goroutines: Shutdown closes sessions that never logged in
	// without a BYE, which could wait on a TLS handshake that never comes.
	authed   atomic.Bool
	selected *store.Mailbox
	view     *view

	endOnce sync.Once
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	sess := &session{srv: s, conn: c, ip: connlimit.RemoteIP(c.NetConn().RemoteAddr())}
	if overLimit(c.NetConn()) {
		s.refusals.Refused(s.log, "imap", sess.ip, "protocol")
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Code: imap.ResponseCodeUnavailable,
			Text: "Too many connections from your address"}
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.sessions[sess] = true
	}
	s.mu.Unlock()
	if closing {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	if s.cfg.Hostname != nil {
		return sess, &imapserver.GreetingData{Text: s.cfg.Hostname() + " IMAP server ready"}, nil
	}
	return sess, nil, nil
}

// Close runs once when the connection ends.
func (s *session) Close() error {
	s.unselect()
	if s.loggedIn {
		s.srv.hub.removeSession(s.account.ID, s)
		s.srv.releaseAccount(s.account.ID)
		s.loggedIn = false
	}
	s.srv.mu.Lock()
	delete(s.srv.sessions, s)
	s.srv.mu.Unlock()
	return nil
}

// end says BYE and closes the connection from outside the session's goroutine.
func (s *session) end(reason string) {
	s.endOnce.Do(func() {
		s.conn.Bye(reason)
	})
}

func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// errClosed ends a command after the session has said BYE itself.
var errClosed = fmt.Errorf("imap session ended: %w", net.ErrClosed)

// storeError turns a store error into the reply a client should see: NO with a response code
// for what the client can fix, NO [SERVERBUG] with a log line for the rest.
func (s *session) storeError(op string, err error) error {
	var code imap.ResponseCode
	var text string
	switch {
	case errors.Is(err, store.ErrNotFound):
		code, text = imap.ResponseCodeNonExistent, "No such mailbox"
	case errors.Is(err, store.ErrExists):
		code, text = imap.ResponseCodeAlreadyExists, "Mailbox already exists"
	case errors.Is(err, store.ErrMailboxName):
		code, text = imap.ResponseCodeCannot, "Invalid mailbox name"
	case errors.Is(err, store.ErrHasChildren):
		code, text = imap.ResponseCodeHasChildren, "Mailbox has children, delete them first"
	case errors.Is(err, store.ErrCannotDelete):
		code, text = imap.ResponseCodeCannot, "INBOX cannot be deleted"
	case errors.Is(err, store.ErrOverQuota):
		code, text = imap.ResponseCodeOverQuota, "Over storage quota" // RFC 9208 §4.3
	case errors.Is(err, store.ErrSpecialUse):
		code, text = "USEATTR", "Unsupported special-use attribute"
	case errors.Is(err, store.ErrBusy) || errors.Is(err, context.DeadlineExceeded):
		s.srv.log.Warn("imap store busy", "op", op, "user", s.account.Address, "err", err)
		code, text = imap.ResponseCodeUnavailable, "Server busy, try again"
	default:
		s.srv.log.Error("imap store operation failed", "op", op, "user", s.account.Address, "err", err)
		code, text = imap.ResponseCodeServerBug, "Internal error"
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
}

// Login checks credentials within the shared failed-login budget (over it: NO [UNAVAILABLE]
// without checking the password, RFC 5530 §3) and logs every failure in one stable line for
// fail2ban:
//
//	level=WARN msg="auth failed" proto=imap ip=192.0.2.7 user=alice@example.com
func (s *session) Login(username, password string) error {
	if _, isTLS := s.conn.NetConn().(*tls.Conn); !isTLS && !isLoopback(s.ip) {
		// AllowInsecureAuth is for dev mode on loopback; anyone else needs TLS (RFC 9051 §6.2.3).
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to authenticate"}
	}
	attempt, err := s.srv.cfg.Logins.Begin(loginlimit.Mail, s.ip, username)
	if err != nil {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed logins, try again later"}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	acct, err := s.srv.st.Authenticate(ctx, username, password)
	if err != nil {
		if !errors.Is(err, store.ErrAuthFailed) {
			attempt.Cancel()
			if !errors.Is(err, store.ErrPasswordBusy) {
				s.srv.log.Error("imap authentication error", "ip", s.ip, "user", username, "err", err)
			}
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Temporary failure, try again"}
		}
		attempt.Failed()
		s.srv.cfg.Logins.LogFailure(s.srv.log, "imap", s.ip, strings.ToLower(username))
		return imapserver.ErrAuthFailed
	}
	attempt.Succeeded()
	return s.enterAuthenticated(acct)
}

// enterAuthenticated makes acct the session's user, within the per-account session limit.
func (s *session) enterAuthenticated(acct store.Account) error {
	if !s.srv.acquireAccount(acct.ID) {
		s.srv.log.Warn("imap login refused: too many sessions for account", "ip", s.ip, "user", acct.Address)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many connections for this account"}
	}
	s.account = acct
	s.loggedIn = true
	s.authed.Store(true)
	s.srv.hub.addSession(acct.ID, s)
	return nil
}

// AppendLimit is APPENDLIMIT (RFC 7889); imapserver refuses larger literals before reading them.
func (s *session) AppendLimit() uint32 { return uint32(s.srv.cfg.MaxMessageSize) }

// Namespace: one personal namespace, no shared folders (RFC 2342).
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: store.MailboxDelim}}}, nil
}

func (s *session) mailbox(ctx context.Context, name string) (store.Mailbox, error) {
	mb, err := s.srv.st.MailboxByName(ctx, s.account.ID, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return mb, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
		}
		return mb, s.storeError("lookup", err)
	}
	return mb, nil
}

func (s *session) Create(name string, options *imap.CreateOptions) error {
	ctx, cancel := s.ctx()
	defer cancel()
	name = strings.TrimSuffix(name, string(store.MailboxDelim)) // RFC 9051 §6.3.4: a trailing delimiter is allowed
	use := ""
	if options != nil && len(options.SpecialUse) > 0 {
		if len(options.SpecialUse) > 1 {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR", Text: "Only one special-use attribute per mailbox"}
		}
		use = string(options.SpecialUse[0])
	}
	if _, err := s.srv.st.CreateMailbox(ctx, s.account.ID, name, use); err != nil {
		return s.storeError("create", err)
	}
	return nil
}

func (s *session) Delete(name string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.srv.st.DeleteMailbox(ctx, s.account.ID, name); err != nil {
		return s.storeError("delete", err)
	}
	return nil
}

func (s *session) Rename(from, to string, _ *imap.RenameOptions) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.srv.st.RenameMailbox(ctx, s.account.ID, from, to); err != nil {
		return s.storeError("rename", err)
	}
	return nil
}

func (s *session) Subscribe(name string) error   { return s.setSubscribed(name, true) }
func (s *session) Unsubscribe(name string) error { return s.setSubscribed(name, false) }

func (s *session) setSubscribed(name string, sub bool) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.srv.st.SetSubscribed(ctx, s.account.ID, name, sub); err != nil {
		return s.storeError("subscribe", err)
	}
	return nil
}

func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	mb, err := s.mailbox(ctx, name)
	if err != nil {
		return nil, err
	}
	st, err := s.srv.st.Status(ctx, mb.ID)
	if err != nil {
		return nil, s.storeError("status", err)
	}
	return s.statusData(st, options), nil
}

func (s *session) statusData(st store.MailboxStatus, options *imap.StatusOptions) *imap.StatusData {
	data := &imap.StatusData{Mailbox: st.Name}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.Deleted
	}
	if options.Size {
		data.Size = &st.Size
	}
	if options.HighestModSeq {
		data.HighestModSeq = uint64(st.HighestModSeq)
	}
	if options.DeletedStorage {
		kib := (st.DeletedSize + 1023) / 1024 // RFC 9208 §4.4: in units of 1024 octets, as STORAGE
		data.DeletedStorage = &kib
	}
	if options.NumRecent {
		data.NumRecent = &st.Recent // IMAP4rev1 only; imapserver refuses it in IMAP4rev2
	}
	if options.AppendLimit {
		limit := s.AppendLimit()
		data.AppendLimit = &limit
	}
	return data
}

// Append stores a message from an APPEND literal (RFC 9051 §6.3.12).
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	mb, err := s.srv.st.MailboxByName(ctx, s.account.ID, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
		}
		return nil, s.storeError("append", err)
	}
	if r.Size() > s.srv.cfg.MaxMessageSize {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too big"}
	}
	buf := make([]byte, 0, r.Size())
	b := bytes.NewBuffer(buf)
	if n, err := io.Copy(b, r); err != nil || n != r.Size() {
		// The connection ended inside the literal: store nothing.
		return nil, fmt.Errorf("append literal: read %d of %d bytes: %w", n, r.Size(), errors.Join(err, io.ErrUnexpectedEOF))
	}
	msg := b.Bytes()
	if !options.Binary {
		// A literal8 (~{n}) is stored intact: its binary parts may hold bare LF and NUL on
		// purpose (RFC 3516 §4.4). Text is CRLF-normalised like every other way in.
		msg = normalizeCRLF(msg)
	}
	flags := fromFlags(withoutRecent(options.Flags))
	validity, uid, err := s.srv.st.Append(ctx, mb.ID, msg, flags, options.Time)
	if err != nil {
		return nil, s.storeError("append", err)
	}
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: validity}, nil
}

// normalizeCRLF turns bare LF and bare CR line ends into CRLF: stored messages are
// CRLF-normalised so sizes and bodies agree across IMAP, POP3 and relaying.
func normalizeCRLF(b []byte) []byte {
	bare := false
	for i, c := range b {
		if (c == '\n' && (i == 0 || b[i-1] != '\r')) || (c == '\r' && (i+1 == len(b) || b[i+1] != '\n')) {
			bare = true
			break
		}
	}
	if !bare {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// Poll sends pending updates after a command (imapserver calls it; allowExpunge is false after
// FETCH, STORE and SEARCH, RFC 9051 §7.5.1).
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.view == nil {
		return nil
	}
	v := s.view
	out := sink{
		exists: func(n uint32) error {
			if err := w.WriteNumMessages(n); err != nil {
				return err
			}
			if !s.rev1() {
				return nil
			}
			if v.state.claimsRecent {
				ctx, cancel := s.ctx()
				defer cancel()
				if err := s.takeRecent(ctx, v.known[len(v.known)-1], false); err != nil {
					return err
				}
			}
			return w.WriteNumRecent(v.numRecent()) // RFC 3501 §7.3.2
		},
		flags: func(seq, uid uint32, flags []string, modseq int64) error {
			if v.learnKeywords(flags) {
				f, perm := v.mailboxFlags()
				if err := w.WriteMailboxFlags(f); err != nil {
					return err
				}
				if err := w.WritePermanentFlags(perm); err != nil {
					return err
				}
			}
			if s.condStore() {
				return w.WriteMessageFlagsModSeq(seq, imap.UID(uid), v.flagsOf(uid, flags), uint64(modseq))
			}
			return w.WriteMessageFlags(seq, imap.UID(uid), v.flagsOf(uid, flags))
		},
	}
	if allowExpunge {
		out.expunge = w.WriteExpunge
		out.vanished = s.vanishedWriter(w.WriteVanished)
	}
	return s.checkStep(v.drain(out))
}

// checkStep ends the session when its view fell out of step with the store: one BYE and one log
// line for this session, nothing else affected.
func (s *session) checkStep(err error) error {
	var oos errOutOfStep
	if errors.As(err, &oos) {
		s.srv.log.Warn("imap session out of step with its mailbox, ending it", "ip", s.ip, "user", s.account.Address,
			"mailbox", s.selected.Name, "reason", oos.reason)
		s.end(oos.reason)
		return errClosed
	}
	return err
}

// Idle pushes updates until the client sends DONE (RFC 2177, RFC 9051 §6.3.13).
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	for {
		var notify chan struct{}
		if s.view != nil {
			if err := s.Poll(w, true); err != nil {
				return err
			}
			notify = s.view.notify
		}
		select {
		case <-notify:
		case <-stop:
			return nil
		case <-s.srv.closed:
			return nil
		}
	}
}

func toFlags(in []string) []imap.Flag {
	out := make([]imap.Flag, len(in))
	for i, f := range in {
		out[i] = imap.Flag(f)
	}
	return out
}

func fromFlags(in []imap.Flag) []string {
	out := make([]string, len(in))
	for i, f := range in {
		out[i] = string(f)
	}
	return out
}

func isLoopback(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}
