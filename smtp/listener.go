package smtp

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mailstead/connlimit"
	"mailstead/loginlimit"
)

// limitListener enforces the connection limits go-smtp lacks: in all and per client (an IPv4
// address or an IPv6 /64). A client over the limit gets "421 4.7.0" (RFC 5321 §3.8: a server may
// refuse service with 421) and is closed before a session starts; on the implicit-TLS port it
// is closed without a word, since cleartext before the handshake reads as a TLS failure.
type limitListener struct {
	net.Listener
	lim         Limits
	implicitTLS bool
	draining    *atomic.Bool
	log         *slog.Logger
	refusals    *connlimit.RefusalLog

	mu    sync.Mutex
	total int
	perIP map[string]int
	conns map[*idleConn]bool
}

func (s *Server) newLimitListener(l net.Listener, implicitTLS bool) *limitListener {
	return &limitListener{Listener: l, lim: s.cfg.Limits, implicitTLS: implicitTLS, draining: &s.draining,
		log: s.cfg.Logger, refusals: &s.refusals, perIP: map[string]int{}, conns: map[*idleConn]bool{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := connlimit.RemoteIP(c.RemoteAddr())
		key := loginlimit.ClientKey(ip)
		l.mu.Lock()
		over := (l.lim.MaxConns > 0 && l.total >= l.lim.MaxConns) || (l.lim.MaxConnsPerIP > 0 && l.perIP[key] >= l.lim.MaxConnsPerIP)
		if !over {
			l.total++
			l.perIP[key]++
		}
		l.mu.Unlock()
		if over {
			l.refusals.Refused(l.log, "smtp", ip, "protocol")
			if !l.implicitTLS {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("421 4.7.0 Too many connections, try again later\r\n"))
			}
			c.Close()
			continue
		}
		ic := &idleConn{Conn: c, idle: l.lim.IdleTimeout, minRate: l.lim.MinDataRate, grace: l.lim.DataGrace, draining: l.draining}
		ic.release = func() { l.release(key, ic) }
		l.mu.Lock()
		l.conns[ic] = true
		l.mu.Unlock()
		return ic, nil
	}
}

// wakeIdle interrupts the reads of sessions waiting for a command, so that a draining server
// does not wait out their idle timeout.
func (l *limitListener) wakeIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if !c.inData.Load() {
			c.Conn.SetReadDeadline(time.Now())
		}
	}
}

func (l *limitListener) release(key string, c *idleConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	l.total--
	if l.perIP[key]--; l.perIP[key] <= 0 {
		delete(l.perIP, key)
	}
}

// dataSlack is how many bytes a DATA/BDAT transfer may be behind its minimum rate (one slow TCP
// window).
const dataSlack = 64 << 10

// idleConn puts a deadline on each read instead of on the whole DATA transfer (go-smtp's
// ReadTimeout caps the transfer, which fails large messages on slow links). During a DATA/BDAT
// transfer the deadline is also bounded by a minimum average rate, so the whole transfer has
// a deadline scaled to its size: a client sending one byte a minute no longer holds its slot
// for ever. A deadline the library sets (the TLS handshake's) is kept when it is sooner. While
// the server drains, reads outside a transfer fail at once, so idle sessions end and sessions in
// a transaction finish it first.
type idleConn struct {
	net.Conn
	idle     time.Duration
	minRate  int64         // bytes per second a transfer must average after grace; 0: no floor
	grace    time.Duration // the start of a transfer, before the rate applies
	draining *atomic.Bool
	inData   atomic.Bool
	once     sync.Once
	release  func()

	mu        sync.Mutex
	explicit  time.Time // read deadline set through SetReadDeadline; zero for none
	dataStart time.Time // when the current transfer began; zero outside one
	dataBytes int64     // bytes read in the current transfer
	// cutOff is set when a transfer missed its deadline: the rest of the message must not be
	// read as commands, so every later read fails and go-smtp ends the session (421 4.4.2).
	cutOff error
}

func (c *idleConn) Read(b []byte) (int, error) {
	inData := c.inData.Load()
	if c.draining.Load() && !inData {
		return 0, net.ErrClosed
	}
	c.mu.Lock()
	if c.cutOff != nil {
		c.mu.Unlock()
		return 0, c.cutOff
	}
	now := time.Now()
	var d time.Time
	if c.idle > 0 {
		d = now.Add(c.idle)
	}
	earliest := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	earliest(c.explicit)
	switch {
	case !inData:
		c.dataStart, c.dataBytes = time.Time{}, 0
	case c.dataStart.IsZero():
		c.dataStart = now
	}
	if inData && c.minRate > 0 {
		behind := time.Duration(float64(c.dataBytes+dataSlack) / float64(c.minRate) * float64(time.Second))
		earliest(c.dataStart.Add(c.grace + behind))
	}
	if !d.IsZero() {
		c.Conn.SetReadDeadline(d)
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(b)
	if inData {
		c.mu.Lock()
		c.dataBytes += int64(n)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.cutOff = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.explicit = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *idleConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
