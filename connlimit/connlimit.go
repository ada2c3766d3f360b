// Package connlimit bounds what connections can hold on every listener: how many are open in all
// and from one client (an IPv4 address or an IPv6 /64), how long a client may stay silent before
// its first byte (the TLS handshake or the first command), and how long any one write may block.
// It never reads or writes protocol bytes: a connection over a limit is closed at once, before
// any handshake, which costs the server nothing.
package connlimit

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mailstead/loginlimit"
)

// Limits for one listener. Zero fields take the defaults of Default.
type Limits struct {
	MaxConns     int           // open connections in all
	MaxPerClient int           // open connections from one IPv4 address or IPv6 /64
	FirstRead    time.Duration // a new connection's read deadline, until the protocol sets its own
	Write        time.Duration // longest a single write may block
}

// Default limits: generous for people, small for one attacker.
var Default = Limits{MaxConns: 1000, MaxPerClient: 32, FirstRead: 30 * time.Second, Write: 2 * time.Minute}

// Listener applies Limits to the connections it accepts.
type Listener struct {
	net.Listener
	name   string
	log    *slog.Logger
	refuse func(reason string) // counts refusals (metrics); may be nil
	limits atomic.Pointer[Limits]

	mu     sync.Mutex
	total  int
	perKey map[string]int
	quiet  RefusalLog
}

// Wrap limits l, which serves the service name (for logs). refused, if not nil, is called for
// every refused connection with the reason ("total" or "client").
func Wrap(l net.Listener, name string, lim Limits, log *slog.Logger, refused func(reason string)) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl := &Listener{Listener: l, name: name, log: log, refuse: refused, perKey: map[string]int{}}
	cl.SetLimits(lim)
	return cl
}

// SetLimits changes the limits; connections already open stay.
func (l *Listener) SetLimits(lim Limits) {
	if lim.MaxConns <= 0 {
		lim.MaxConns = Default.MaxConns
	}
	if lim.MaxPerClient <= 0 {
		lim.MaxPerClient = Default.MaxPerClient
	}
	if lim.FirstRead <= 0 {
		lim.FirstRead = Default.FirstRead
	}
	if lim.Write <= 0 {
		lim.Write = Default.Write
	}
	l.limits.Store(&lim)
}

// Open reports the connections open now, in all and from the client of ip.
func (l *Listener) Open(ip string) (total, client int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perKey[loginlimit.ClientKey(ip)]
}

// Accept returns the next connection within the limits, closing those over them.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lim := l.limits.Load()
		ip := RemoteIP(c.RemoteAddr())
		key := loginlimit.ClientKey(ip)
		reason := ""
		l.mu.Lock()
		switch {
		case l.total >= lim.MaxConns:
			reason = "total"
		case l.perKey[key] >= lim.MaxPerClient:
			reason = "client"
		default:
			l.total++
			l.perKey[key]++
		}
		l.mu.Unlock()
		if reason != "" {
			// Counted and logged before the close, so whoever sees the close sees the count.
			if l.refuse != nil {
				l.refuse(reason)
			}
			l.quiet.Refused(l.log, l.name, ip, reason)
			c.Close()
			continue
		}
		c.SetReadDeadline(time.Now().Add(lim.FirstRead))
		return &Conn{Conn: c, l: l, key: key, write: lim.Write}, nil
	}
}

func (l *Listener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perKey[key]--; l.perKey[key] <= 0 {
		delete(l.perKey, key)
	}
}

// Conn is an accepted connection: its slot is freed the moment it is closed, and every write has
// a deadline (the protocol's own, if sooner).
type Conn struct {
	net.Conn
	l     *Listener
	key   string
	write time.Duration
	once  sync.Once

	mu       sync.Mutex
	deadline time.Time // the write deadline the protocol set; zero for none
}

func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	d := time.Now().Add(c.write)
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	c.Conn.SetWriteDeadline(d)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}

// Unwrap is the connection underneath.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// RemoteIP is the IP of a connection's remote address, without the port.
func RemoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// logEvery is how often refusals of one client are logged.
const logEvery = time.Minute

// RefusalLog writes the "connection refused" line at most once per client per minute, with the
// number of refusals since the last line: a flood must not fill the disk with log lines.
type RefusalLog struct {
	// Count, if set, is called for every refusal (metrics), logged or not.
	Count func(limit string)

	mu       sync.Mutex
	loggedAt map[string]time.Time // client → when its refusals were last logged
	muted    map[string]int       // client → refusals not logged since
}

// Refused notes one refused connection from ip and logs it if the client's interval is over:
//
//	level=INFO msg="connection refused: too many connections" service=imaps ip=192.0.2.7 limit=client refused_since_last_line=41
func (r *RefusalLog) Refused(log *slog.Logger, service, ip, limit string) {
	if r.Count != nil {
		r.Count(limit)
	}
	key := loginlimit.ClientKey(ip)
	now := time.Now()
	r.mu.Lock()
	if r.loggedAt == nil || len(r.loggedAt) > 10000 { // a flood of addresses: forget, do not grow
		r.loggedAt, r.muted = map[string]time.Time{}, map[string]int{}
	}
	if now.Sub(r.loggedAt[key]) < logEvery {
		r.muted[key]++
		r.mu.Unlock()
		return
	}
	muted := r.muted[key]
	r.loggedAt[key] = now
	delete(r.muted, key)
	r.mu.Unlock()
	log.Info("connection refused: too many connections", "service", service, "ip", ip, "limit", limit,
		"refused_since_last_line", muted)
}
