package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

const (
	// maxCommandLine is the longest command line, CRLF included (RFC 2449 §4).
	maxCommandLine = 255
	// maxSASLLine bounds a client response inside AUTH (RFC 5034 §4 lets it
	// exceed the command limit).
	maxSASLLine = 4096
	// maxDiscard is how much of one overlong line is skipped before the
	// session gives up on a client that never sends a line ending.
	maxDiscard = 64 << 10
)

type state int

const (
	stateAuthorization state = iota // RFC 1939 §4
	stateTransaction                // RFC 1939 §5
)

var (
	errLineTooLong = errors.New("line too long")
	errLineFlood   = errors.New("line without end")
	errShutdown    = errors.New("server shutting down")
	errQuit        = errors.New("session ends")
)

// session is one POP3 connection.
type session struct {
	srv      *Server
	log      *slog.Logger
	raw      net.Conn // the TCP connection, for deadlines and forced close
	conn     net.Conn // raw, or the TLS connection on top of it
	br       *bufio.Reader
	bw       *bufio.Writer
	ip       string
	limitKey string
	implicit bool
	isTLS    bool
	ctx      context.Context

	state      state
	user       string // from USER, waiting for PASS
	errors     int
	authFails  int
	md         Maildrop
	lockKey    string
	authedUser string
	msgs       []Message
	deleted    []bool

	interruptOnce sync.Once
}

func newSession(srv *Server, c net.Conn, ip, limitKey string, implicitTLS bool) *session {
	return &session{
		srv:      srv,
		log:      srv.log,
		raw:      c,
		conn:     c,
		ip:       ip,
		limitKey: limitKey,
		implicit: implicitTLS,
		ctx:      srv.ctx,
	}
}

// deadlineWriter pushes the write deadline forward before every write, so
// a client that stops reading cannot hold a session forever while a long
// RETR still makes progress.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.br = bufio.NewReaderSize(c, 4096)
	s.bw = bufio.NewWriterSize(deadlineWriter{c, s.srv.cfg.IdleTimeout}, 32<<10)
}

// interrupt wakes a session blocked reading a command so it sees Shutdown.
// The session re-checks the closing flag after each time it sets its own
// deadline, so this cannot be lost.
func (s *session) interrupt() {
	s.interruptOnce.Do(func() { s.raw.SetReadDeadline(time.Now()) })
}

func (s *session) run() {
	defer s.srv.endSession(s)
	defer s.raw.Close()
	defer func() { s.conn.Close() }() // s.conn becomes the TLS connection after STLS
	defer func() {
		defer s.recoverPanic() // a backend panicking in Close must not crash the process
		s.releaseMaildrop()
	}()
	defer s.recoverPanic()
	s.log.Debug("pop3 connect", "proto", "pop3", "ip", s.ip, "tls", s.implicit)
	s.setConn(s.raw)
	if s.implicit {
		tc := tls.Server(s.raw, s.srv.cfg.TLSConfig)
		if err := s.handshake(tc); err != nil {
			s.srv.cfg.MailLog.HandshakeFailed(s.log, "pop3", "ip", s.ip, "err", err)
			return
		}
	}
	greeting := "+OK POP3 server ready"
	if h := s.srv.cfg.Hostname; h != nil && h() != "" {
		greeting = "+OK " + h() + " POP3 server ready"
	}
	s.reply(greeting)
	for {
		line, err := s.readLine(maxCommandLine)
		switch {
		case errors.Is(err, errLineTooLong):
			if s.fail("-ERR line too long (RFC 2449: at most 255 octets)") {
				return
			}
			continue
		case errors.Is(err, errShutdown):
			s.reply("-ERR [SYS/TEMP] server shutting down, try again later")
			s.bw.Flush()
			return
		case err != nil:
			// EOF, idle timeout (RFC 1939 §3: close without UPDATE and
			// without a response), or a broken connection.
			s.log.Debug("pop3 disconnect", "proto", "pop3", "ip", s.ip, "err", err)
			return
		}
		if err := s.dispatch(line); err != nil {
			if errors.Is(err, errShutdown) {
				s.reply("-ERR [SYS/TEMP] server shutting down, try again later")
			}
			s.bw.Flush()
			if !errors.Is(err, errQuit) && !errors.Is(err, errShutdown) {
				s.log.Debug("pop3 session closed", "proto", "pop3", "ip", s.ip, "err", err)
			}
			return
		}
	}
}

// handshake runs a TLS handshake with a deadline and switches the session
// onto the TLS connection. Anything the client pipelined after STLS has been
// read into the old buffer and is discarded with it (RFC 2595 §4, and the
// STARTTLS command-injection class of bugs).
func (s *session) handshake(tc *tls.Conn) error {
	s.raw.SetDeadline(time.Now().Add(s.srv.cfg.TLSHandshakeTimeout))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return err
	}
	s.raw.SetDeadline(time.Time{})
	s.isTLS = true
	s.setConn(tc)
	return nil
}

// readLine reads one line of at most max octets (CRLF included), without its
// line ending. It flushes pending replies first unless the client has
// already pipelined more input (RFC 2449 §6.6).
func (s *session) readLine(max int) (string, error) {
	if s.br.Buffered() == 0 {
		if err := s.bw.Flush(); err != nil {
			return "", err
		}
	}
	if err := s.raw.SetReadDeadline(time.Now().Add(s.srv.cfg.IdleTimeout)); err != nil {
		return "", err
	}
	if s.srv.closing.Load() {
		return "", errShutdown
	}
	var line []byte
	tooLong := false
	discarded := 0
	for {
		chunk, err := s.br.ReadSlice('\n')
		if !tooLong && len(line)+len(chunk) <= max {
			line = append(line, chunk...)
		} else {
			tooLong = true
			discarded += len(chunk)
			if discarded > maxDiscard {
				return "", errLineFlood
			}
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if s.srv.closing.Load() {
			return "", errShutdown
		}
		return "", err
	}
	if tooLong {
		return "", errLineTooLong
	}
	str := strings.TrimSuffix(string(line), "\n")
	return strings.TrimSuffix(str, "\r"), nil
}

// reply writes one response line.
func (s *session) reply(line string) {
	s.bw.WriteString(line)
	s.bw.WriteString("\r\n")
}

// fail sends an -ERR reply for a client mistake and counts it. It reports
// true when the session has made too many mistakes and must end.
func (s *session) fail(line string) bool {
	s.errors++
	if s.errors >= s.srv.cfg.MaxErrors {
		s.reply("-ERR too many errors, closing connection")
		s.bw.Flush()
		return true
	}
	s.reply(line)
	return false
}

// failCmd is fail for command handlers: a non-nil error ends the session.
func (s *session) failCmd(line string) error {
	if s.fail(line) {
		return errQuit
	}
	return nil
}

// authAllowed reports whether credentials may be sent on this connection:
// under TLS, or in clear text from a loopback client when the dev mode
// allows it (RFC 2595 §4 lets a server refuse USER/PASS before STLS).
func (s *session) authAllowed() bool {
	if s.isTLS {
		return true
	}
	ip := net.ParseIP(s.ip)
	return s.srv.cfg.AllowInsecureAuth && ip != nil && ip.IsLoopback()
}

// recoverPanic turns a panic in a session into a log line: one broken
// session must not take the server down. It only works deferred directly.
func (s *session) recoverPanic() {
	if r := recover(); r != nil {
		s.log.Error("pop3 session panic", "proto", "pop3", "ip", s.ip, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// releaseMaildrop closes the maildrop and then releases the session lock,
// even if Close panics.
func (s *session) releaseMaildrop() {
	md, key := s.md, s.lockKey
	s.md, s.lockKey, s.msgs, s.deleted = nil, "", nil, nil
	if md == nil {
		return
	}
	defer func() {
		if key != "" {
			s.srv.unlock(key)
		}
	}()
	if err := md.Close(); err != nil {
		s.log.Error("pop3 maildrop close", "proto", "pop3", "ip", s.ip, "user", s.authedUser, "err", err)
	}
}
