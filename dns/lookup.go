package dns

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"
)

// Names returned by the lookups below have no trailing dot.

// LookupMX returns the MX records of domain sorted by preference (lowest
// first, ties in answer order: RFC 5321 section 5.1 wants the caller to
// shuffle them). A null MX (RFC 7505: a single "0 ." record)
// returns an error matching ErrNullMX. If "." appears next to real MX hosts
// (a broken zone), the "." entry is dropped.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]*net.MX, error) {
	rrs, _, err := r.query(ctx, domain, mdns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []*net.MX
	null := false
	for _, rr := range rrs {
		mx := rr.(*mdns.MX)
		if mx.Mx == "." {
			null = true
			continue
		}
		out = append(out, &net.MX{Host: trimDot(mx.Mx), Pref: mx.Preference})
	}
	if len(out) == 0 && null {
		return nil, &Error{Name: mdns.Fqdn(domain), Type: "MX", kind: kindNullMX}
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	return out, nil
}

// LookupIP returns the IPv4 (A) and then IPv6 (AAAA) addresses of host,
// asked in parallel. Records of one family are returned even if the other
// query failed. With no address at all the error is temporary if either
// query failed temporarily, ErrNoRecords if the name exists, and
// ErrNotFound otherwise.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	var wg sync.WaitGroup
	var a, aaaa []mdns.RR
	var errA, errAAAA error
	wg.Add(2)
	go func() { defer wg.Done(); a, _, errA = r.query(ctx, host, mdns.TypeA) }()
	go func() { defer wg.Done(); aaaa, _, errAAAA = r.query(ctx, host, mdns.TypeAAAA) }()
	wg.Wait()
	var out []net.IP
	for _, rr := range a {
		out = append(out, slices.Clone(rr.(*mdns.A).A)) // the answer may be a cached one, shared
	}
	for _, rr := range aaaa {
		out = append(out, slices.Clone(rr.(*mdns.AAAA).AAAA))
	}
	if len(out) > 0 {
		return out, nil
	}
	switch {
	case IsTemporary(errA):
		return nil, errA
	case IsTemporary(errAAAA):
		return nil, errAAAA
	case errors.Is(errA, ErrNoRecords):
		return nil, errA
	case errors.Is(errAAAA, ErrNoRecords):
		return nil, errAAAA
	case errA != nil:
		return nil, errA
	default:
		return nil, errAAAA
	}
}

// LookupTXT returns one string per TXT record of name; the character
// strings of a record (each at most 255 bytes) are joined without
// separator (RFC 7208 section 3.3, RFC 6376 section 3.6.2.2).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, _, err := r.query(ctx, name, mdns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*mdns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupAddr returns the PTR names of ip (reverse DNS).
func (r *Resolver) LookupAddr(ctx context.Context, ip net.IP) ([]string, error) {
	arpa, err := mdns.ReverseAddr(ip.String())
	if err != nil {
		return nil, fmt.Errorf("dns: PTR: %w", err)
	}
	rrs, _, err := r.query(ctx, arpa, mdns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, trimDot(rr.(*mdns.PTR).Ptr))
	}
	return out, nil
}

// LookupCNAME returns the target of the CNAME record at name (one step).
// A name that is not an alias gives an error matching ErrNoRecords.
func (r *Resolver) LookupCNAME(ctx context.Context, name string) (string, error) {
	rrs, _, err := r.query(ctx, name, mdns.TypeCNAME)
	if err != nil {
		return "", err
	}
	return trimDot(rrs[0].(*mdns.CNAME).Target), nil
}

// CAA is one certification authority authorization record (RFC 8659 §4.1).
type CAA struct {
	Flag  uint8
	Tag   string // "issue", "issuewild", "iodef", …
	Value string
}

// LookupCAA returns the CAA records at name itself (not the closest ancestor's, which RFC 8659
// §3 has a CA use: callers checking what a domain publishes want the domain's own).
func (r *Resolver) LookupCAA(ctx context.Context, name string) ([]CAA, error) {
	rrs, _, err := r.query(ctx, name, mdns.TypeCAA)
	if err != nil {
		return nil, err
	}
	out := make([]CAA, 0, len(rrs))
	for _, rr := range rrs {
		c := rr.(*mdns.CAA)
		out = append(out, CAA{Flag: c.Flag, Tag: c.Tag, Value: c.Value})
	}
	return out, nil
}

// LookupSRV looks up _service._proto.name (RFC 2782) and returns the records
// sorted by priority, then by weight descending. Service and proto may be
// empty, in which case name is queried as is.
func (r *Resolver) LookupSRV(ctx context.Context, service, proto, name string) ([]*net.SRV, error) {
	q := name
	if service != "" || proto != "" {
		q = "_" + service + "._" + proto + "." + name
	}
	rrs, _, err := r.query(ctx, q, mdns.TypeSRV)
	if err != nil {
		return nil, err
	}
	out := make([]*net.SRV, 0, len(rrs))
	for _, rr := range rrs {
		s := rr.(*mdns.SRV)
		out = append(out, &net.SRV{Target: trimDot(s.Target), Port: s.Port, Priority: s.Priority, Weight: s.Weight})
	}
	slices.SortStableFunc(out, func(a, b *net.SRV) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		return cmp.Compare(b.Weight, a.Weight)
	})
	return out, nil
}

// TLSA is one DANE TLSA record (RFC 6698 section 2.1).
type TLSA struct {
	Usage        uint8  // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
	Selector     uint8  // 0 full certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8  // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte // certificate association data
}

// LookupTLSA returns the TLSA records at _port._proto.host (proto is "tcp"
// for SMTP, RFC 7672). authentic is the AD bit of the answer: DANE may only
// use records from a validating resolver that set it (RFC 7672 section 2.2).
func (r *Resolver) LookupTLSA(ctx context.Context, port int, proto, host string) (recs []TLSA, authentic bool, err error) {
	q := "_" + strconv.Itoa(port) + "._" + proto + "." + host
	rrs, ad, err := r.query(ctx, q, mdns.TypeTLSA)
	if err != nil {
		return nil, false, err
	}
	for _, rr := range rrs {
		t := rr.(*mdns.TLSA)
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			return nil, false, fmt.Errorf("dns: TLSA %s: bad data: %w", q, err)
		}
		recs = append(recs, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return recs, ad, nil
}
