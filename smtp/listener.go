package smtp

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener enforces the connection limits go-smtp lacks: in all and per client IP. A client
// over the limit gets "421 4.7.0" (RFC 5321 §3.8: a server may refuse service with 421) and is
// closed before a session starts.
type limitListener struct {
	net.Listener
	maxConns, maxPerIP int
	idle               time.Duration
	draining           *atomic.Bool

	mu    sync.Mutex
	total int
	perIP map[string]int
	conns map[*idleConn]bool
}

func newLimitListener(l net.Listener, maxConns, maxPerIP int, idle time.Duration, draining *atomic.Bool) *limitListener {
	return &limitListener{Listener: l, maxConns: maxConns, maxPerIP: maxPerIP, idle: idle, draining: draining, perIP: map[string]int{}, conns: map[*idleConn]bool{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr())
		l.mu.Lock()
		over := (l.maxConns > 0 && l.total >= l.maxConns) || (l.maxPerIP > 0 && l.perIP[ip] >= l.maxPerIP)
		if !over {
			l.total++
			l.perIP[ip]++
		}
		l.mu.Unlock()
		if over {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("421 4.7.0 Too many connections, try again later\r\n"))
			c.Close()
			continue
		}
		ic := &idleConn{Conn: c, idle: l.idle, draining: l.draining}
		ic.release = func() { l.release(ip, ic) }
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

func (l *limitListener) release(ip string, c *idleConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// idleConn puts a deadline on each read instead of on the whole DATA transfer (go-smtp's
// ReadTimeout caps the transfer, which fails large messages on slow links). While the server
// drains, reads outside a DATA/BDAT transfer fail at once, so idle sessions end and sessions in a
// transaction finish it first.
type idleConn struct {
	net.Conn
	idle     time.Duration
	draining *atomic.Bool
	inData   atomic.Bool
	once     sync.Once
	release  func()
}

func (c *idleConn) Read(b []byte) (int, error) {
	if c.draining.Load() && !c.inData.Load() {
		return 0, net.ErrClosed
	}
	if c.idle > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(b)
}

func (c *idleConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
