package mailauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"

	"mailstead/dns"
)

// checkSPF evaluates SPF (RFC 7208) for the MAIL FROM and HELO identities.
// With a null MAIL FROM, the MAIL FROM identity is postmaster@HELO (RFC 7208
// section 2.4), so both results are the HELO check.
func (c *Checker) checkSPF(ctx context.Context, ip net.IP, helo, mailFrom string) (from, hel SPFResult) {
	hel = SPFResult{Status: StatusNone, Identity: "helo", Domain: helo}
	if isDomainName(helo) {
		hel = c.spfCheck(ctx, ip, helo, "postmaster@"+helo, "helo")
	} else {
		hel.Reason = "HELO is not a domain name"
	}
	if mailFrom == "" {
		// Sender stays empty: it marks the null sender.
		from = hel
		from.Identity = "mailfrom"
		from.Sender = ""
		return from, hel
	}
	return c.spfCheck(ctx, ip, helo, mailFrom, "mailfrom"), hel
}

func (c *Checker) spfCheck(ctx context.Context, ip net.IP, helo, sender, identity string) SPFResult {
	r := SPFResult{Identity: identity, Domain: domainOf(sender), Sender: sender}
	if !isDomainName(r.Domain) {
		r.Status = StatusNone
		r.Reason = "no domain to check"
		return r
	}
	status, err := spf.CheckHostWithSender(ip, helo, sender,
		spf.WithResolver(c.Resolver.NetCompat()),
		spf.WithContext(ctx))
	r.Status = Status(status)
	switch status {
	case spf.TempError, spf.PermError:
		if err != nil {
			r.Reason = err.Error()
		}
	}
	return r
}

// isDomainName reports whether s looks like a DNS domain name with at least
// two labels (and not an address literal).
func isDomainName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 || !strings.Contains(s, ".") || net.ParseIP(s) != nil {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// checkIPRev does forward-confirmed reverse DNS (RFC 8601 section 3): pass
// when a PTR name of the IP resolves back to it; at most 10 names are tried.
func (c *Checker) checkIPRev(ctx context.Context, ip net.IP) IPRevResult {
	r := IPRevResult{IP: ip.String()}
	names, err := c.Resolver.LookupAddr(ctx, ip)
	switch {
	case dns.IsTemporary(err):
		r.Status, r.Reason = StatusTempError, err.Error()
		return r
	case err != nil:
		r.Status, r.Reason = StatusFail, "no PTR record"
		return r
	}
	if len(names) > 10 {
		names = names[:10]
	}
	temp := false
	for _, name := range names {
		ips, err := c.Resolver.LookupIP(ctx, name)
		if dns.IsTemporary(err) {
			temp = true
			continue
		}
		for _, a := range ips {
			if a.Equal(ip) {
				r.Names = append(r.Names, name)
				break
			}
		}
	}
	switch {
	case len(r.Names) > 0:
		r.Status = StatusPass
	case temp:
		r.Status, r.Reason = StatusTempError, "forward lookup failed"
	default:
		r.Status, r.Reason = StatusFail, "PTR names do not resolve back to the IP"
	}
	return r
}

// CheckDNSBL queries ip in each DNS block list zone (RFC 5782) and returns
// the zones that list it. An answer in 127.0.0.0/8 means listed, except
// 127.0.0.1 (never a listing, RFC 5782 section 5) and 127.255.255.0/24
// (error codes of some lists). Zones that failed are skipped and reported
// in err, joined.
func CheckDNSBL(ctx context.Context, r *dns.Resolver, ip net.IP, zones []string) (listed []string, err error) {
	rev := reverseIP(ip)
	if rev == "" {
		return nil, fmt.Errorf("dnsbl: invalid IP %v", ip)
	}
	var errs []error
	for _, zone := range zones {
		ips, qerr := r.LookupIP(ctx, rev+"."+strings.TrimSuffix(zone, "."))
		if qerr != nil {
			if !dns.IsNotFound(qerr) {
				errs = append(errs, fmt.Errorf("dnsbl %s: %w", zone, qerr))
			}
			continue
		}
		for _, a := range ips {
			a4 := a.To4()
			if a4 == nil || a4[0] != 127 || a4.Equal(net.IPv4(127, 0, 0, 1)) || (a4[1] == 255 && a4[2] == 255) {
				continue
			}
			listed = append(listed, zone)
			break
		}
	}
	return listed, errors.Join(errs...)
}

// reverseIP returns the DNSBL query prefix of ip: reversed octets for IPv4,
// reversed nibbles for IPv6 (RFC 5782 section 2.4).
func reverseIP(ip net.IP) string {
	if ip4 := ip.To4(); ip4 != nil {
		return fmt.Sprintf("%d.%d.%d.%d", ip4[3], ip4[2], ip4[1], ip4[0])
	}
	ip16 := ip.To16()
	if ip16 == nil {
		return ""
	}
	const hexDigits = "0123456789abcdef"
	var b strings.Builder
	for i := len(ip16) - 1; i >= 0; i-- {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteByte(hexDigits[ip16[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hexDigits[ip16[i]>>4])
	}
	return b.String()
}
