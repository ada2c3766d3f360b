package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mailstead/dns"
)

// Resolver is the part of dns.Resolver the checks use; tests give the real one pointed at a fake
// zone.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) ([]*net.MX, error)
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupAddr(ctx context.Context, ip net.IP) ([]string, error)
	LookupCNAME(ctx context.Context, name string) (string, error)
	LookupSRV(ctx context.Context, service, proto, name string) ([]*net.SRV, error)
	LookupCAA(ctx context.Context, name string) ([]dns.CAA, error)
}

// Check outcomes.
const (
	StatusOK        = "ok"
	StatusWeaker    = "weaker" // it passes, but protects less than the record suggested
	StatusMissing   = "missing"
	StatusWrong     = "wrong"
	StatusError     = "error"       // the lookup failed (temporary DNS trouble): try again
	StatusUnchecked = "not checked" // no lookup exists for this type
)

// Checked is a record with the result of looking it up.
type Checked struct {
	Record
	Status string
	Found  string // what was published, when it is wrong or weaker; the error, when the lookup failed
	Weaker string // why what was published protects less than the suggested record
}

// checkAll looks every record up at once and returns them in the same order.
func checkAll(ctx context.Context, r Resolver, ourIPs []net.IP, recs []Record) []Checked {
	out := make([]Checked, len(recs))
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, found := checkRecord(ctx, r, ourIPs, rec)
			out[i] = Checked{Record: rec, Status: st, Found: found}
			if st == StatusWeaker {
				out[i].Weaker = rec.check.weaker(found)
			}
		}()
	}
	wg.Wait()
	return out
}

func lookupFailed(err error) (string, string) {
	if dns.IsNotFound(err) {
		return StatusMissing, ""
	}
	return StatusError, err.Error()
}

func sameHost(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func checkRecord(ctx context.Context, r Resolver, ourIPs []net.IP, rec Record) (string, string) {
	name := strings.TrimSuffix(rec.Name, ".")
	c := rec.check
	switch c.kind {
	case "mx":
		mxs, err := r.LookupMX(ctx, name)
		if errors.Is(err, dns.ErrNullMX) {
			return StatusWrong, "0 . (null MX: the domain refuses all mail)"
		}
		if err != nil {
			return lookupFailed(err)
		}
		var found []string
		for _, mx := range mxs {
			if sameHost(mx.Host, c.host) {
				if len(mxs) > 1 {
					return StatusOK, "" // backup MX hosts elsewhere are the operator's choice
				}
				return StatusOK, ""
			}
			found = append(found, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
		}
		return StatusWrong, strings.Join(found, ", ")
	case "ip":
		ips, err := r.LookupIP(ctx, name)
		if err != nil {
			return lookupFailed(err)
		}
		v4 := c.ip.To4() != nil
		var found []string
		for _, ip := range ips {
			if (ip.To4() != nil) != v4 {
				continue
			}
			if ip.Equal(c.ip) {
				return StatusOK, ""
			}
			found = append(found, ip.String())
		}
		if len(found) == 0 {
			return StatusMissing, ""
		}
		return StatusWrong, strings.Join(found, ", ")
	case "txt":
		txts, err := r.LookupTXT(ctx, name)
		if err != nil {
			return lookupFailed(err)
		}
		var matching []string
		for _, t := range txts {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(t)), c.prefix) {
				matching = append(matching, t)
			}
		}
		switch {
		case len(matching) == 0:
			if len(txts) > 0 && c.prefix == "v=dkim1" {
				matching = txts // "v=" is optional in DKIM keys (RFC 6376 §3.6.1)
				break
			}
			return StatusMissing, ""
		case len(matching) > 1 && (c.prefix == "v=spf1" || c.prefix == "v=dmarc1" || c.prefix == "v=stsv1"):
			// RFC 7208 §4.5, RFC 7489 §6.6.3, RFC 8461 §3.1: more than one record means none counts.
			return StatusWrong, "more than one record: " + strings.Join(matching, " | ")
		}
		for _, t := range matching {
			if normSpace(t) == normSpace(c.want) || (c.ok != nil && c.ok(t)) {
				if c.weaker != nil && c.weaker(t) != "" {
					return StatusWeaker, t
				}
				return StatusOK, ""
			}
		}
		return StatusWrong, strings.Join(matching, " | ")
	case "cnamehost":
		target, err := r.LookupCNAME(ctx, name)
		if err == nil && sameHost(target, c.host) {
			return StatusOK, ""
		}
		// Address records pointing here serve as well as a CNAME.
		ips, ierr := r.LookupIP(ctx, name)
		if ierr != nil {
			if err == nil {
				return StatusWrong, "CNAME " + target
			}
			return lookupFailed(ierr)
		}
		if anyIPIn(ips, ourIPs) {
			return StatusOK, ""
		}
		if err == nil {
			return StatusWrong, "CNAME " + target
		}
		return StatusWrong, ipList(ips)
	case "srv":
		srvs, err := r.LookupSRV(ctx, "", "", name)
		if err != nil {
			return lookupFailed(err)
		}
		var found []string
		for _, s := range srvs {
			if sameHost(s.Target, c.host) && int(s.Port) == c.port {
				return StatusOK, ""
			}
			found = append(found, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
		}
		return StatusWrong, strings.Join(found, ", ")
	case "caa":
		recs, err := r.LookupCAA(ctx, name)
		if err != nil {
			return lookupFailed(err)
		}
		var found []string
		for _, cr := range recs {
			// RFC 8659 §4.2: the issuer domain comes before any ";" parameters.
			issuer, _, _ := strings.Cut(cr.Value, ";")
			if strings.EqualFold(cr.Tag, "issue") && sameHost(strings.TrimSpace(issuer), c.host) {
				return StatusOK, ""
			}
			found = append(found, fmt.Sprintf("%d %s %q", cr.Flag, cr.Tag, cr.Value))
		}
		return StatusWrong, strings.Join(found, ", ")
	case "ptr":
		names, err := r.LookupAddr(ctx, c.ip)
		if err != nil {
			return lookupFailed(err)
		}
		for _, n := range names {
			if sameHost(n, c.host) {
				// Forward-confirmed: the name must lead back to the address (RFC 8601 §2.7.3's
				// iprev, which receivers apply).
				ips, err := r.LookupIP(ctx, c.host)
				if err != nil {
					return StatusWrong, "PTR is " + n + " but " + c.host + " does not resolve"
				}
				if !anyIPIn(ips, []net.IP{c.ip}) {
					return StatusWrong, "PTR is " + n + " but " + c.host + " resolves to " + ipList(ips)
				}
				return StatusOK, ""
			}
		}
		return StatusWrong, strings.Join(names, ", ")
	}
	return StatusUnchecked, ""
}

func normSpace(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), "")) }

func anyIPIn(ips, set []net.IP) bool {
	for _, ip := range ips {
		if slices.ContainsFunc(set, ip.Equal) {
			return true
		}
	}
	return false
}

func ipList(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// ServerCheck is one fact about the server itself on the DNS page.
type ServerCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"` // what to do when it is not ok
	FixURL string `json:"fix_url,omitempty"`
}

// hostnameCheck: the hostname must resolve to this server, and only to it.
func hostnameCheck(ctx context.Context, r Resolver, host string, ourIPs []net.IP) ServerCheck {
	c := ServerCheck{Name: "Hostname " + host + " resolves to this server"}
	ips, err := r.LookupIP(ctx, host)
	switch {
	case err != nil:
		c.Status, c.Detail = lookupFailed(err)
		c.Fix = "Create the A/AAAA records of " + host + " shown below."
	case len(ourIPs) == 0:
		c.Status, c.Detail = StatusUnchecked, "this server's public address is unknown: set admin.public_ips"
	default:
		var foreign []string
		for _, ip := range ips {
			if !slices.ContainsFunc(ourIPs, ip.Equal) {
				foreign = append(foreign, ip.String())
			}
		}
		if len(foreign) == 0 {
			c.Status, c.Detail = StatusOK, ipList(ips)
		} else {
			c.Status, c.Detail = StatusWrong, "also resolves to "+strings.Join(foreign, ", ")+", which is not this server"
			c.Fix = "Point every A/AAAA record of " + host + " at this server."
		}
	}
	return c
}

// port25Probe connects to target (HOST:PORT) as an outbound delivery would and waits for the
// 220 greeting (RFC 5321 §4.2): many VPS providers block outbound port 25, and then no mail
// leaves without a smarthost. The host is resolved through r, never the system resolver.
func port25Probe(ctx context.Context, r Resolver, target string) ServerCheck {
	c := ServerCheck{Name: "Outbound port 25 is open", FixURL: "/admin/settings#queue.smarthost",
		Fix: "Your provider seems to block outgoing port 25: ask them to open it, or set a smarthost (queue.smarthost) that relays your mail."}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		c.Status, c.Detail = StatusError, "bad probe target "+target
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		if ips, err = r.LookupIP(ctx, host); err != nil {
			c.Status, c.Detail, c.Fix = StatusError, "could not resolve "+host+": "+err.Error(), ""
			return c
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ips[0].String(), port))
	if err != nil {
		c.Status, c.Detail = StatusWrong, "no connection to "+target+": "+err.Error()
		return c
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "220") {
		c.Status, c.Detail = StatusWrong, "connected to "+target+" but got no SMTP greeting"
		return c
	}
	fmt.Fprint(conn, "QUIT\r\n")
	c.Status, c.Detail, c.Fix = StatusOK, "connected to "+target, ""
	return c
}

// port25Cache keeps the last probe for a while: every visit to the DNS page need not knock on a
// stranger's port 25.
type port25Cache struct {
	mu     sync.Mutex
	at     time.Time
	target string
	last   ServerCheck
}

func (p *port25Cache) get(ctx context.Context, r Resolver, target string, fresh bool) ServerCheck {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !fresh && p.target == target && time.Since(p.at) < 10*time.Minute {
		return p.last
	}
	p.last = port25Probe(ctx, r, target)
	p.at, p.target = time.Now(), target
	return p.last
}

// portString is strconv.Itoa for templates.
func portString(p int) string { return strconv.Itoa(p) }
