// Package dns owns every DNS lookup mailstead makes: one Resolver (MX, A/AAAA,
// TXT, PTR, TLSA, SRV, CNAME) that sends its queries to the configured server
// or to the nameservers of /etc/resolv.conf, and reports failures as
// "does not exist", "no records of that type" or "temporary", the three
// outcomes mail code turns into 550 or 450 replies.
// It holds no global state and must not be bypassed: other packages do not
// call net.Lookup* or open DNS sockets. A resolver keeps no answers unless it
// is given a Cache (Resolver.Cached): the mail path asks through a cached one,
// so a run of messages from one sender asks its questions once, while the
// admin page's live checks ask the wire every time.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// Resolver sends DNS queries with github.com/miekg/dns, over UDP and again
// over TCP when an answer comes back truncated. It is safe for concurrent
// use. Set the exported fields, if at all, before the first lookup.
type Resolver struct {
	// Timeout bounds one exchange with one server (default 3s). The
	// context passed to each lookup bounds the whole lookup.
	Timeout time.Duration
	// Attempts is how many times every server is tried (default 2).
	Attempts int

	server string // "HOST:PORT", or "" for /etc/resolv.conf
	cache  *Cache // nil: every lookup asks the wire

	confOnce sync.Once
	servers  []string
	confErr  error
}

// New returns a resolver. A non-empty server ("HOST:PORT", for example the
// fake zone of a test or the --dns flag) receives every query; an empty one
// means the nameservers listed in /etc/resolv.conf.
func New(server string) *Resolver {
	return &Resolver{server: server}
}

// Cached returns a resolver asking the same servers, with the same Timeout and
// Attempts, that keeps answers in c (see Cache for which).
func (r *Resolver) Cached(c *Cache) *Resolver {
	return &Resolver{Timeout: r.Timeout, Attempts: r.Attempts, server: r.server, cache: c}
}

// Server reports the server given to New ("" when /etc/resolv.conf is used).
func (r *Resolver) Server() string { return r.server }

func (r *Resolver) nameservers() ([]string, error) {
	r.confOnce.Do(func() {
		if r.server != "" {
			r.servers = []string{r.server}
			return
		}
		conf, err := mdns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			r.confErr = fmt.Errorf("reading /etc/resolv.conf: %w", err)
			return
		}
		for _, s := range conf.Servers {
			r.servers = append(r.servers, net.JoinHostPort(s, conf.Port))
		}
		if len(r.servers) == 0 {
			r.confErr = errors.New("no nameserver in /etc/resolv.conf")
		}
	})
	return r.servers, r.confErr
}

// ednsSize is the UDP payload size we advertise (the DNS flag day 2020 value).
const ednsSize = 1232

// maxCNAMEChain limits how many CNAMEs a lookup follows.
const maxCNAMEChain = 8

// query resolves name/qtype and returns the records of type qtype from the
// answer, following CNAMEs the server did not resolve for us. It returns an
// *Error for NXDOMAIN, NODATA and failures. The returned bool is the AD
// (authenticated data) bit of the final answer.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]mdns.RR, bool, error) {
	fqdn, err := wireName(name)
	if err != nil {
		// A name that cannot be asked cannot exist: not found, never
		// temporary (a 4xx would make the sender retry for days).
		return nil, false, &Error{Name: name, Type: typeString(qtype), kind: kindNotFound, Err: err}
	}
	orig := fqdn
	for range maxCNAMEChain {
		msg, server, err := r.cachedExchange(ctx, fqdn, qtype)
		if err != nil {
			return nil, false, &Error{Name: orig, Type: typeString(qtype), Server: server, kind: kindTemporary, Err: err}
		}
		switch msg.Rcode {
		case mdns.RcodeSuccess:
		case mdns.RcodeNameError:
			// RFC 8020: NXDOMAIN means nothing exists at or below the name.
			return nil, false, &Error{Name: orig, Type: typeString(qtype), Server: server, Rcode: msg.Rcode, kind: kindNotFound}
		case mdns.RcodeServerFailure, mdns.RcodeRefused:
			return nil, false, &Error{Name: orig, Type: typeString(qtype), Server: server, Rcode: msg.Rcode, kind: kindTemporary}
		default:
			return nil, false, &Error{Name: orig, Type: typeString(qtype), Server: server, Rcode: msg.Rcode, kind: kindPermanent}
		}
		var out []mdns.RR
		target := ""
		for _, rr := range msg.Answer {
			if rr.Header().Rrtype == qtype {
				out = append(out, rr)
			} else if c, ok := rr.(*mdns.CNAME); ok {
				target = c.Target
			}
		}
		if len(out) > 0 || qtype == mdns.TypeCNAME {
			if len(out) == 0 {
				return nil, false, &Error{Name: orig, Type: typeString(qtype), Server: server, kind: kindNoRecords}
			}
			return out, msg.AuthenticatedData, nil
		}
		if target == "" {
			return nil, false, &Error{Name: orig, Type: typeString(qtype), Server: server, kind: kindNoRecords}
		}
		// The answer holds only a CNAME chain: ask for its end ourselves.
		fqdn = target
	}
	return nil, false, &Error{Name: orig, Type: typeString(qtype), kind: kindPermanent, Err: errors.New("CNAME chain too long")}
}

// wireName returns name as a fully qualified ASCII name: internationalised
// labels become A-labels (RFC 5890); names that cannot be sent are errors.
func wireName(name string) (string, error) {
	ascii := name
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			a, err := idna.Lookup.ToASCII(name)
			if err != nil {
				return "", fmt.Errorf("invalid domain name %q: %w", name, err)
			}
			ascii = a
			break
		}
	}
	fqdn := mdns.Fqdn(ascii)
	if _, ok := mdns.IsDomainName(fqdn); !ok || name == "" {
		return "", fmt.Errorf("invalid domain name %q", name)
	}
	return fqdn, nil
}

// cachedExchange is exchange through the cache, when the resolver has one. The
// message it returns may be shared: callers only read it.
func (r *Resolver) cachedExchange(ctx context.Context, fqdn string, qtype uint16) (*mdns.Msg, string, error) {
	if r.cache == nil {
		return r.exchange(ctx, fqdn, qtype)
	}
	k := cacheKey{name: strings.ToLower(fqdn), qtype: qtype}
	if msg, server, ok := r.cache.get(k); ok {
		return msg, server, nil
	}
	msg, server, err := r.exchange(ctx, fqdn, qtype)
	if err == nil {
		r.cache.put(k, msg, server)
	}
	return msg, server, err
}

// exchange asks each nameserver in turn, Attempts rounds, until one answers
// with something other than SERVFAIL/REFUSED. UDP answers with the TC bit
// are asked again over TCP (RFC 7766 section 5).
func (r *Resolver) exchange(ctx context.Context, fqdn string, qtype uint16) (*mdns.Msg, string, error) {
	servers, err := r.nameservers()
	if err != nil {
		return nil, "", err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = 2
	}
	req := new(mdns.Msg)
	req.SetQuestion(fqdn, qtype)
	req.RecursionDesired = true
	// The DO bit asks a validating resolver to set AD on secure answers
	// (needed for DANE TLSA, RFC 7672 section 2.2).
	req.SetEdns0(ednsSize, true)

	var lastMsg *mdns.Msg
	var lastServer string
	lastErr := errors.New("no answer")
	for range attempts {
		for _, server := range servers {
			if err := ctx.Err(); err != nil {
				return nil, server, err
			}
			msg, err := exchangeOne(ctx, req, server, "udp", timeout)
			if err == nil && msg.Truncated {
				msg, err = exchangeOne(ctx, req, server, "tcp", timeout)
			}
			if err != nil {
				lastErr, lastServer = err, server
				continue
			}
			if msg.Rcode == mdns.RcodeServerFailure || msg.Rcode == mdns.RcodeRefused {
				lastMsg, lastServer = msg, server
				continue
			}
			return msg, server, nil
		}
	}
	if lastMsg != nil {
		return lastMsg, lastServer, nil
	}
	return nil, lastServer, lastErr
}

func exchangeOne(ctx context.Context, req *mdns.Msg, server, network string, timeout time.Duration) (*mdns.Msg, error) {
	c := &mdns.Client{Net: network, Timeout: timeout, UDPSize: ednsSize}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, _, err := c.ExchangeContext(ctx, req.Copy(), server)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", network, server, err)
	}
	if msg.Id != req.Id {
		return nil, fmt.Errorf("%s %s: answer id mismatch", network, server)
	}
	return msg, nil
}

func typeString(t uint16) string {
	if s, ok := mdns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// trimDot removes the trailing dot of a fully qualified name.
func trimDot(s string) string {
	if s == "." {
		return s
	}
	return strings.TrimSuffix(s, ".")
}
