package pop3

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// dispatch runs one command line. A non-nil error ends the session.
func (s *session) dispatch(line string) error {
	keyword, arg, _ := strings.Cut(line, " ")
	keyword = strings.ToUpper(keyword)
	// Commands valid in every state.
	switch keyword {
	case "CAPA":
		return s.cmdCapa()
	case "QUIT":
		return s.cmdQuit()
	case "NOOP":
		if s.state == stateTransaction { // RFC 1939 §5
			s.reply("+OK")
			return nil
		}
	}
	if s.state == stateAuthorization {
		switch keyword {
		case "USER":
			return s.cmdUser(arg)
		case "PASS":
			return s.cmdPass(arg)
		case "AUTH":
			return s.cmdAuth(arg)
		case "STLS":
			return s.cmdStls(arg)
		case "APOP":
			return s.failCmd("-ERR APOP is not supported")
		case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "UIDL", "TOP":
			return s.failCmd("-ERR " + keyword + " is not valid before login")
		}
		return s.failCmd("-ERR unknown command")
	}
	args := strings.Fields(arg)
	switch keyword {
	case "STAT":
		return s.cmdStat(args)
	case "LIST":
		return s.cmdList(args)
	case "UIDL":
		return s.cmdUidl(args)
	case "RETR":
		return s.cmdRetr(args)
	case "TOP":
		return s.cmdTop(args)
	case "DELE":
		return s.cmdDele(args)
	case "RSET":
		return s.cmdRset(args)
	case "USER", "PASS", "AUTH", "STLS", "APOP":
		return s.failCmd("-ERR " + keyword + " is not valid after login")
	}
	return s.failCmd("-ERR unknown command")
}

// cmdCapa lists the capabilities of RFC 2449 §6. USER and SASL are listed
// only where they may be used: under TLS, unless insecure auth is allowed
// (RFC 2595 §4); STLS only on a plain connection. The list does not depend
// on the state: "capabilities available in the AUTHORIZATION state MUST be
// announced in both states" (RFC 2449 §5).
func (s *session) cmdCapa() error {
	s.reply("+OK capability list follows")
	s.reply("TOP")
	s.reply("UIDL")
	s.reply("RESP-CODES")
	s.reply("AUTH-RESP-CODE")
	s.reply("PIPELINING")
	if s.authAllowed() {
		s.reply("USER")
		s.reply("SASL " + strings.Join(s.saslMechanisms(), " "))
	}
	if !s.isTLS && s.srv.cfg.TLSConfig != nil {
		s.reply("STLS")
	}
	s.reply("IMPLEMENTATION " + s.srv.cfg.Implementation)
	s.reply(".")
	return nil
}

// cmdStls starts TLS on the plain port (RFC 2595 §4).
func (s *session) cmdStls(arg string) error {
	switch {
	case arg != "":
		return s.failCmd("-ERR STLS takes no argument")
	case s.isTLS:
		return s.failCmd("-ERR already using TLS")
	case s.srv.cfg.TLSConfig == nil:
		return s.failCmd("-ERR TLS is not available")
	}
	s.reply("+OK begin TLS negotiation")
	if err := s.bw.Flush(); err != nil {
		return err
	}
	if n := s.br.Buffered(); n > 0 {
		s.log.Debug("pop3 discarding input pipelined after STLS", "proto", "pop3", "ip", s.ip, "octets", n)
	}
	if err := s.handshake(tls.Server(s.raw, s.srv.cfg.TLSConfig)); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	s.user = "" // RFC 2595 §4: start over in AUTHORIZATION
	return nil
}

// cmdQuit ends the session; in TRANSACTION it enters UPDATE and removes the
// messages marked deleted, in one call (RFC 1939 §6).
func (s *session) cmdQuit() error {
	if s.state != stateTransaction {
		s.reply("+OK bye")
		return errQuit
	}
	var ids []int64
	left := 0
	for i, m := range s.msgs {
		if s.deleted[i] {
			ids = append(ids, m.ID)
		} else {
			left++
		}
	}
	if len(ids) > 0 {
		if err := s.md.Delete(s.ctx, ids); err != nil {
			s.log.Error("pop3 delete failed", "proto", "pop3", "ip", s.ip, "user", s.authedUser, "count", len(ids), "err", err)
			s.reply("-ERR [SYS/TEMP] some deleted messages not removed")
			return errQuit
		}
		s.log.Info("pop3 deleted messages", "proto", "pop3", "ip", s.ip, "user", s.authedUser, "count", len(ids))
	}
	s.reply(fmt.Sprintf("+OK bye, %d messages left", left))
	return errQuit
}

func (s *session) totals() (count int, size int64) {
	for i, m := range s.msgs {
		if !s.deleted[i] {
			count++
			size += m.Size
		}
	}
	return count, size
}

func (s *session) cmdStat(args []string) error {
	if len(args) != 0 {
		return s.failCmd("-ERR STAT takes no argument")
	}
	count, size := s.totals()
	s.reply(fmt.Sprintf("+OK %d %d", count, size))
	return nil
}

// msgNumber parses a message number argument (RFC 1939 §5) and returns its
// index into the snapshot, or replies -ERR and returns ok=false.
func (s *session) msgNumber(arg string) (idx int, ok bool, err error) {
	n, perr := strconv.ParseUint(arg, 10, 31)
	if perr != nil || n == 0 || n > uint64(len(s.msgs)) {
		return 0, false, s.failCmd("-ERR no such message")
	}
	if s.deleted[n-1] {
		return 0, false, s.failCmd(fmt.Sprintf("-ERR message %d already deleted", n))
	}
	return int(n - 1), true, nil
}

func (s *session) cmdList(args []string) error {
	return s.listing(args, "LIST", func(i int) string { return strconv.FormatInt(s.msgs[i].Size, 10) })
}

func (s *session) cmdUidl(args []string) error {
	return s.listing(args, "UIDL", func(i int) string { return s.msgs[i].UIDL })
}

// listing serves LIST and UIDL: one message, or all that are not deleted.
func (s *session) listing(args []string, name string, value func(i int) string) error {
	switch len(args) {
	case 0:
		count, size := s.totals()
		if name == "LIST" {
			s.reply(fmt.Sprintf("+OK %d messages (%d octets)", count, size))
		} else {
			s.reply("+OK unique-id listing follows")
		}
		for i := range s.msgs {
			if !s.deleted[i] {
				s.reply(strconv.Itoa(i+1) + " " + value(i))
			}
		}
		s.reply(".")
		return nil
	case 1:
		i, ok, err := s.msgNumber(args[0])
		if !ok {
			return err
		}
		s.reply("+OK " + strconv.Itoa(i+1) + " " + value(i))
		return nil
	}
	return s.failCmd("-ERR too many arguments")
}

func (s *session) cmdRetr(args []string) error {
	if len(args) != 1 {
		return s.failCmd("-ERR RETR takes one message number")
	}
	i, ok, err := s.msgNumber(args[0])
	if !ok {
		return err
	}
	return s.sendMessage(i, -1)
}

// cmdTop sends the header, the blank line and the first n body lines
// (RFC 1939 §7).
func (s *session) cmdTop(args []string) error {
	if len(args) != 2 {
		return s.failCmd("-ERR TOP takes a message number and a line count")
	}
	lines, perr := strconv.ParseUint(args[1], 10, 63)
	if perr != nil {
		if errors.Is(perr, strconv.ErrRange) {
			lines = 1<<62 - 1 // more lines than any message has
		} else {
			return s.failCmd("-ERR invalid line count")
		}
	}
	i, ok, err := s.msgNumber(args[0])
	if !ok {
		return err
	}
	return s.sendMessage(i, int(min(lines, 1<<62-1)))
}

// sendMessage answers RETR (bodyLines < 0) or TOP. The message is opened
// before the status line, so a message expunged since the snapshot gets a
// plain -ERR. A read failure after "+OK" cannot be reported in-band, so it
// ends the session: the client sees no terminating dot and keeps nothing.
func (s *session) sendMessage(i, bodyLines int) error {
	m := s.msgs[i]
	r, err := s.md.Open(s.ctx, m.ID)
	if errors.Is(err, ErrGone) {
		return s.failCmd(fmt.Sprintf("-ERR message %d no longer exists", i+1))
	}
	if err != nil {
		s.log.Error("pop3 open message", "proto", "pop3", "ip", s.ip, "user", s.authedUser, "uidl", m.UIDL, "err", err)
		s.reply("-ERR [SYS/TEMP] cannot read message, try again later")
		return nil
	}
	defer r.Close()
	if bodyLines < 0 {
		s.reply(fmt.Sprintf("+OK %d octets", m.Size))
	} else {
		s.reply("+OK top of message follows")
	}
	n, err := copyMessage(s.bw, r, bodyLines)
	if err != nil {
		return fmt.Errorf("reading message %s: %w", m.UIDL, err)
	}
	if bodyLines < 0 && n != m.Size {
		s.log.Warn("pop3 message size differs from listing", "proto", "pop3", "user", s.authedUser, "uidl", m.UIDL, "listed", m.Size, "sent", n)
	}
	s.reply(".")
	return nil
}

// cmdDele marks a message; it is removed only in UPDATE (RFC 1939 §5).
func (s *session) cmdDele(args []string) error {
	if len(args) != 1 {
		return s.failCmd("-ERR DELE takes one message number")
	}
	i, ok, err := s.msgNumber(args[0])
	if !ok {
		return err
	}
	s.deleted[i] = true
	s.reply(fmt.Sprintf("+OK message %d deleted", i+1))
	return nil
}

func (s *session) cmdRset(args []string) error {
	if len(args) != 0 {
		return s.failCmd("-ERR RSET takes no argument")
	}
	clear(s.deleted)
	count, size := s.totals()
	s.reply(fmt.Sprintf("+OK maildrop has %d messages (%d octets)", count, size))
	return nil
}
