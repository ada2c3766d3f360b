package imap

import (
	"bytes"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"mailstead/connlimit"
	"mailstead/loginlimit"
)

// limitListener applies the per-client connection limit (an IPv4 address or an IPv6 /64) at
// accept, and wraps each connection so the idle timeout applies and (for cleartext) STARTTLS
// cannot be abused by pipelining. A connection over the limit is not refused here: on the
// implicit-TLS port a cleartext BYE before the handshake reads as a TLS failure to the client,
// which reconnects at once. newSession says BYE instead, inside TLS, after the handshake.
type limitListener struct {
	net.Listener
	srv         *Server
	implicitTLS bool
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	key := loginlimit.ClientKey(connlimit.RemoteIP(c.RemoteAddr()))
	wc := &limitedConn{Conn: c, idle: l.srv.cfg.IdleTimeout, release: func() {}}
	if l.srv.acquireIP(key) {
		wc.release = func() { l.srv.releaseIP(key) }
	} else {
		wc.overLimit = true
	}
	if l.implicitTLS {
		// The handshake happens when imapserver writes the greeting, before it sets a read
		// deadline of its own: a client that never starts TLS must not hold the slot.
		c.SetReadDeadline(time.Now().Add(l.srv.cfg.HandshakeTimeout))
		// imapserver recognises TLS by the *tls.Conn type, so TLS must be the outer layer.
		return tls.Server(wc, l.srv.cfg.TLSConfig), nil
	}
	return &cleartextConn{limitedConn: wc}, nil
}

// limitedConn releases its per-IP slot on Close and caps every read deadline at IdleTimeout
// from now: imapserver waits up to 35 minutes for a command, and we end idle clients after 30.
// IDLE sets a fresh deadline each time it starts, so re-issuing IDLE keeps a client connected.
type limitedConn struct {
	net.Conn
	idle      time.Duration
	once      sync.Once
	release   func()
	overLimit bool // over the per-client limit: the session says BYE and ends
}

// overLimit reports whether c (as imapserver holds it: TLS or cleartext) came in over the limit.
func overLimit(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	switch lc := c.(type) {
	case *limitedConn:
		return lc.overLimit
	case *cleartextConn:
		return lc.overLimit
	}
	return false
}

func (c *limitedConn) SetReadDeadline(t time.Time) error {
	limit := time.Now().Add(c.idle)
	if t.IsZero() || t.After(limit) {
		t = limit
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *limitedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// cleartextConn hands imapserver at most one line per Read before TLS, so that when the STARTTLS
// command line is read nothing after it sits in imapserver's buffer; whatever the client sent
// after STARTTLS before the handshake is then thrown away here (RFC 9051 §6.2.1 and the
// CVE-2011-0411 class of command injection), instead of being replayed into the TLS stream.
type cleartextConn struct {
	*limitedConn
	buf     []byte // read from the socket, not yet handed out
	line    []byte // start of the current line, for recognising STARTTLS
	tlsSeen bool
	scratch [4096]byte
}

func (c *cleartextConn) Read(p []byte) (int, error) {
	if c.tlsSeen {
		return c.limitedConn.Read(p)
	}
	if len(c.buf) == 0 {
		n, err := c.limitedConn.Read(c.scratch[:])
		if n == 0 {
			return 0, err
		}
		c.buf = c.scratch[:n]
	}
	k := len(c.buf)
	if i := bytes.IndexByte(c.buf, '\n'); i >= 0 {
		k = i + 1
	}
	n := copy(p, c.buf[:k])
	chunk := c.buf[:n]
	c.buf = c.buf[n:]
	if len(c.line) < 64 {
		c.line = append(c.line, chunk[:min(len(chunk), 64-len(c.line))]...)
	}
	if chunk[len(chunk)-1] == '\n' {
		if isStartTLS(c.line) {
			c.tlsSeen = true
			c.buf = nil // pipelined cleartext after STARTTLS is discarded
		}
		c.line = c.line[:0]
	}
	return n, nil
}

// isStartTLS reports whether line is "tag STARTTLS" followed by CRLF.
func isStartTLS(line []byte) bool {
	line = bytes.TrimRight(line, "\r\n")
	sp := bytes.IndexByte(line, ' ')
	return sp > 0 && bytes.EqualFold(line[sp+1:], []byte("STARTTLS"))
}
