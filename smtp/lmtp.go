package smtp

import (
	"net"

	gosmtp "github.com/emersion/go-smtp"
)

// NewLMTP returns the LMTP receiver (RFC 2033) through which an MTA or filter on this machine
// hands mail to mailstead: LHLO instead of EHLO, recipients in our domains only (as on port 25),
// and after DATA one reply per accepted recipient, each sent only once the store has committed
// the message (go-smtp gives every recipient the status Data returns; the store commits all
// copies in one transaction, so they succeed or fail together). The sender is trusted to have
// authenticated the mail already: no SPF/DKIM/DMARC inspection, no MAIL FROM domain check. It is
// served on a unix socket in the data directory, and on loopback TCP when configured; never on a
// public address.
func NewLMTP(cfg Config) *Server {
	cfg.Auth, cfg.TLSConfig = nil, nil
	cfg.Limits.MaxConnsPerIP = 0 // every client is local; MaxConns still bounds them all
	s := newServer(cfg)
	s.srv = s.goSMTP(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		sess, err := s.newSession(c)
		if ss, ok := sess.(*session); ok && ss.ip == nil {
			ss.ip = net.IPv4(127, 0, 0, 1) // a unix socket peer is this machine
		}
		return sess, err
	}), nil)
	s.srv.LMTP = true
	return s
}
