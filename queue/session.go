package queue

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// tryTarget delivers on an idle connection to the host if one is cached, else tries the host's
// addresses (IPv4 and IPv6, in the resolver's order) until a session takes place.
func (q *Queue) tryTarget(ctx context.Context, t target, g *group, b *body, set settings, out []outcome) {
	key := t.connKey()
	for {
		c := q.conns.get(key)
		if c == nil {
			break
		}
		// RSET checks that the cached session is still alive and clean (RFC 5321 §4.1.1.5).
		if r, err := c.cmd("RSET"); err != nil || r.code != 250 {
			q.log.Debug("queue: cached session gone", "host", t.host, "reply", r, "err", err)
			c.close()
			continue
		}
		q.deliverOn(ctx, c, key, t, g, b, set, out)
		return
	}
	ips, err := q.cfg.Resolver.LookupIP(ctx, t.host)
	if err != nil {
		setOpen(out, outcome{status: deferred, code: "4.4.3", host: t.host, reason: fmt.Sprintf("address lookup of %s: %v", t.host, err)})
		return
	}
	for _, ip := range ips {
		plain := false
		for {
			nc, err := q.dial(ctx, ip, t, set)
			if err != nil {
				setOpen(out, outcome{status: deferred, code: "4.4.1", host: t.host, reason: fmt.Sprintf("connecting to %s [%s]: %v", t.host, ip, err)})
				break
			}
			stop := context.AfterFunc(ctx, func() { nc.Close() })
			c, retryPlain := q.open(nc, t, plain, set, out)
			stop()
			if c == nil {
				if retryPlain && !plain {
					// Opportunistic TLS failed: the same host once more, in plain text (RFC 7435).
					plain = true
					continue
				}
				return
			}
			q.deliverOn(ctx, c, key, t, g, b, set, out)
			return
		}
	}
}

// deliverOn runs the transaction on an open session, then keeps the session for the next message
// to the same host or ends it.
func (q *Queue) deliverOn(ctx context.Context, c *client, key connKey, t target, g *group, b *body, set settings, out []outcome) {
	stop := context.AfterFunc(ctx, func() { c.close() })
	reusable := q.transact(ctx, c, t, g, b, out)
	if stop() && reusable && q.conns.put(key, c, set.perDestination) {
		return
	}
	c.quit()
}

func (q *Queue) dial(ctx context.Context, ip net.IP, t target, set settings) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	if set.timeout < d.Timeout {
		d.Timeout = set.timeout
	}
	if q.cfg.SourceIP != nil && (ip.To4() == nil) == (q.cfg.SourceIP.To4() == nil) {
		d.LocalAddr = &net.TCPAddr{IP: q.cfg.SourceIP}
	}
	return d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(t.port)))
}

func (q *Queue) tlsConfig(host string) *tls.Config {
	// Resumed sessions (RFC 8446 §2.2) make the next handshake with the same host cheap.
	return &tls.Config{ServerName: host, RootCAs: q.cfg.RootCAs, MinVersion: tls.VersionTLS12, ClientSessionCache: q.tlsSessions}
}

// open greets the server, introduces us with our hostname, starts TLS and logs in (smarthost). It
// returns a session ready for transactions, or nil with the outcomes filled in; retryPlain asks
// for the host again without STARTTLS, when opportunistic TLS failed.
func (q *Queue) open(nc net.Conn, t target, plain bool, set settings, out []outcome) (_ *client, retryPlain bool) {
	c := newClient(nc, set.timeout)
	ok := false
	defer func() {
		if !ok {
			c.quit()
		}
	}()
	temp := func(code, format string, args ...any) {
		setOpen(out, outcome{status: deferred, code: code, host: t.host, reason: fmt.Sprintf(format, args...)})
	}
	if t.implicitTLS {
		if err := c.handshake(q.tlsConfig(t.host), true); err != nil {
			temp("4.7.5", "TLS with %s: %v", t.host, err)
			return nil, false
		}
	}
	r, err := c.greeting()
	if err != nil {
		temp("4.4.2", "%s: no greeting: %v", t.host, err)
		return nil, false
	}
	if r.code != 220 {
		// A refusing greeting says nothing about the message: try the next MX, then later.
		temp(toTemp(r.enhanced()), "%s greeted with %s", t.host, r)
		return nil, false
	}
	hostname := q.cfg.Hostname()
	if r, err = c.hello(hostname); err != nil || r.code != 250 {
		temp("4.4.2", "%s: EHLO: %v", t.host, firstErr(err, r))
		return nil, false
	}
	if !t.implicitTLS && !plain {
		switch {
		case c.has("STARTTLS"):
			if err := c.startTLS(q.tlsConfig(t.host), t.requireTLS); err != nil {
				if t.requireTLS {
					temp("4.7.5", "%s: STARTTLS (required by %s): %v", t.host, t.why, err)
					return nil, false
				}
				q.log.Debug("queue: opportunistic STARTTLS failed, trying without", "host", t.host, "err", err)
				return nil, true
			}
			if r, err = c.hello(hostname); err != nil || r.code != 250 {
				temp("4.4.2", "%s: EHLO after STARTTLS: %v", t.host, firstErr(err, r))
				return nil, false
			}
		case t.requireTLS:
			// Never in clear when the policy asks for TLS (RFC 8461 §5).
			temp("4.7.5", "%s does not offer STARTTLS, and %s requires TLS", t.host, t.why)
			return nil, false
		}
	}
	if t.user != "" {
		if c.tls == nil {
			temp("4.7.5", "%s: no TLS, credentials are never sent in clear", t.host)
			return nil, false
		}
		if err := c.auth(t.user, t.pass); err != nil {
			temp("4.7.8", "%s: %v", t.host, err)
			return nil, false
		}
	}
	ok = true
	return c, false
}

// transact sends one message to the open recipients of g on an open session and fills in their
// outcomes. It reports whether the session may carry another message.
func (q *Queue) transact(ctx context.Context, c *client, t target, g *group, b *body, out []outcome) (reusable bool) {
	temp := func(code, format string, args ...any) {
		setOpen(out, outcome{status: deferred, code: code, host: t.host, reason: fmt.Sprintf(format, args...)})
	}
	first := g.entries[0]
	// What the message needs of the server (RFC 8689, RFC 1870, RFC 6152, RFC 6531).
	capFail := func(code, format string, args ...any) {
		setOpen(out, outcome{status: deferred, bounceIfLast: true, code: code, host: t.host, reason: fmt.Sprintf(format, args...)})
	}
	if first.RequireTLS && (c.tls == nil || !c.verified || !c.has("REQUIRETLS")) {
		capFail("5.7.30", "REQUIRETLS: %s does not offer REQUIRETLS over TLS with a valid certificate (RFC 8689)", t.host)
		return true
	}
	if max := c.maxSize(); max > 0 && b.size > max {
		capFail("5.3.4", "message of %d bytes exceeds the %d byte limit of %s", b.size, max, t.host)
		return true
	}
	eightBit, err := b.has8bit(ctx)
	if err != nil {
		temp("4.3.0", "%v", err)
		return true
	}
	if eightBit && !c.has("8BITMIME") {
		capFail("5.6.3", "message has 8-bit content and %s does not accept it (no 8BITMIME, RFC 6152)", t.host)
		return true
	}
	var rcpts []string
	var rcptParams [][]string
	var idx []int
	utf8 := first.SMTPUTF8 || !isASCII(g.from)
	// RFC 3461 §5.2.1: a next hop that offers DSN gets the parameters and takes over the reports.
	dsn := c.has("DSN")
	for i, e := range g.entries {
		if out[i].open() {
			rcpts = append(rcpts, e.Rcpt)
			idx = append(idx, i)
			utf8 = utf8 || !isASCII(e.Rcpt)
			if dsn {
				rcptParams = append(rcptParams, dsnRcptParams(e.DSN))
			}
		}
	}
	if utf8 && !c.has("SMTPUTF8") {
		capFail("5.6.7", "message needs SMTPUTF8 (internationalized addresses or headers) and %s does not support it (RFC 6531)", t.host)
		return true
	}
	var params []string
	if c.has("SIZE") {
		params = append(params, "SIZE="+strconv.FormatInt(b.size, 10))
	}
	if eightBit {
		params = append(params, "BODY=8BITMIME")
	}
	if utf8 {
		params = append(params, "SMTPUTF8")
	}
	if first.RequireTLS {
		params = append(params, "REQUIRETLS")
	}
	if dsn {
		params = append(params, dsnMailParams(first.DSN)...)
	}
	// A fresh reader each time: a retry on another host or a reused session sends from byte 0.
	r, err := b.reader(ctx)
	if err != nil {
		temp("4.3.0", "%v", err)
		return true
	}
	res, err := c.send(transaction{from: g.from, mailParams: params, rcpts: rcpts, rcptParams: rcptParams, body: r, size: b.size})
	// 421 means the server is closing the session (RFC 5321 §3.8).
	reusable = err == nil && res.mail.code != 421 && res.data.code != 421
	if res.mail.code != 0 && res.mail.code/100 != 2 {
		// A refused MAIL FROM answers for every recipient of the transaction.
		o := outcome{status: deferred, code: toTemp(res.mail.enhanced()), host: t.host, smtp: true, reason: res.mail.String()}
		if res.mail.code >= 500 {
			o.status, o.code = failed, res.mail.enhanced()
		}
		setOpen(out, o)
		return reusable
	}
	var accepted []int
	for k, r := range res.rcpts {
		i := idx[k]
		if r.code == 421 {
			reusable = false
		}
		switch r.code / 100 {
		case 2:
			accepted = append(accepted, i)
		case 5:
			out[i] = outcome{status: failed, code: r.enhanced(), host: t.host, smtp: true, reason: r.String()}
		default:
			out[i] = outcome{status: deferred, code: toTemp(r.enhanced()), host: t.host, smtp: true, reason: r.String()}
		}
	}
	for _, i := range accepted {
		switch {
		case err != nil:
			// The connection broke before the final reply: the far side may or may not have the
			// message. Sending again risks a duplicate, which RFC 5321 §6.1 prefers to a loss.
			out[i] = outcome{status: deferred, code: "4.4.2", host: t.host, reason: fmt.Sprintf("%s: %v", t.host, err)}
		case res.data.code/100 == 2:
			out[i] = outcome{status: delivered, host: t.host, smtp: true, reason: res.data.String(), dsnPassedOn: dsn}
		case res.data.code/100 == 5:
			out[i] = outcome{status: failed, code: res.data.enhanced(), host: t.host, smtp: true, reason: res.data.String()}
		default:
			out[i] = outcome{status: deferred, code: toTemp(res.data.enhanced()), host: t.host, smtp: true, reason: res.data.String()}
		}
	}
	if err != nil {
		temp("4.4.2", "%s: %v", t.host, err)
	}
	return reusable
}

// connKey says which cached sessions may carry a message: same host and port, opened under the
// same TLS requirement and login.
type connKey struct {
	host       string
	port       int
	requireTLS bool
	user       string
}

func (t target) connKey() connKey {
	return connKey{host: t.host, port: t.port, requireTLS: t.requireTLS, user: t.user}
}

// connIdle is how long a finished session waits for the next message to its host. Short: it saves
// the TCP and TLS handshakes of a burst without holding the far side's slots.
const connIdle = 5 * time.Second

// connCache keeps sessions that finished a transaction cleanly, so the next message to the same
// host skips connecting, EHLO and the TLS handshake.
type connCache struct {
	mu   sync.Mutex
	idle map[connKey][]cachedConn
}

type cachedConn struct {
	c     *client
	since time.Time
}

// get takes the most recently parked session for key, or nil.
func (cc *connCache) get(key connKey) *client {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	list := cc.idle[key]
	for len(list) > 0 {
		last := list[len(list)-1]
		list = list[:len(list)-1]
		if time.Since(last.since) < connIdle {
			cc.idle[key] = list
			return last.c
		}
		go last.c.quit()
	}
	delete(cc.idle, key)
	return nil
}

// put parks a session unless max are parked for key already; it reports whether it took it.
func (cc *connCache) put(key connKey, c *client, max int) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.idle == nil {
		cc.idle = map[connKey][]cachedConn{}
	}
	if len(cc.idle[key]) >= max {
		return false
	}
	cc.idle[key] = append(cc.idle[key], cachedConn{c: c, since: time.Now()})
	return true
}

// reap ends sessions idle for longer than connIdle (all of them when all is set) and reports
// whether any stay parked.
func (cc *connCache) reap(all bool) bool {
	cc.mu.Lock()
	var old []*client
	for k, list := range cc.idle {
		kept := list[:0]
		for _, ic := range list {
			if all || time.Since(ic.since) >= connIdle {
				old = append(old, ic.c)
			} else {
				kept = append(kept, ic)
			}
		}
		if len(kept) == 0 {
			delete(cc.idle, k)
		} else {
			cc.idle[k] = kept
		}
	}
	left := len(cc.idle) > 0
	cc.mu.Unlock()
	for _, c := range old {
		c.quit()
	}
	return left
}
