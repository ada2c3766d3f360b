package dns

import (
	"context"
	"errors"
	"net"
)

// NetCompat presents a Resolver the way *net.Resolver behaves, for libraries
// that inspect *net.DNSError: blitiri.com.ar/go/spf (its DNSResolver
// interface is satisfied, pass it to spf.WithResolver), and go-msgauth's
// dkim and dmarc packages (through TXTFunc). Errors are *net.DNSError with
// IsNotFound set for NXDOMAIN and NODATA and IsTemporary set for temporary
// failures; errors.Is/As still reach the original *Error through Unwrap.
type NetCompat struct{ r *Resolver }

// NetCompat returns the net.Resolver-shaped view of r.
func (r *Resolver) NetCompat() NetCompat { return NetCompat{r} }

// LookupTXT is Resolver.LookupTXT with net-style errors.
func (c NetCompat) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txt, err := c.r.LookupTXT(ctx, name)
	return txt, netError(name, err)
}

// LookupMX is Resolver.LookupMX with net-style errors. A null MX gives an
// empty list and no error: the "mx" SPF mechanism then matches nothing
// (RFC 7505 section 4.4 intent), and counts as a void lookup.
func (c NetCompat) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mx, err := c.r.LookupMX(ctx, name)
	if errors.Is(err, ErrNullMX) {
		return nil, nil
	}
	return mx, netError(name, err)
}

// LookupIPAddr is Resolver.LookupIP with net-style errors.
func (c NetCompat) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, err := c.r.LookupIP(ctx, host)
	if err != nil {
		return nil, netError(host, err)
	}
	out := make([]net.IPAddr, len(ips))
	for i, ip := range ips {
		out[i] = net.IPAddr{IP: ip}
	}
	return out, nil
}

// LookupAddr is Resolver.LookupAddr taking the address as a string; names
// keep the trailing dot like net.Resolver's.
func (c NetCompat) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	names, err := c.r.LookupAddr(ctx, ip)
	if err != nil {
		return nil, netError(addr, err)
	}
	for i, n := range names {
		names[i] = n + "."
	}
	return names, nil
}

// TXTFunc returns a context-bound TXT lookup with net-style errors, the
// shape of go-msgauth's dkim.VerifyOptions.LookupTXT and
// dmarc.LookupOptions.LookupTXT.
func (c NetCompat) TXTFunc(ctx context.Context) func(name string) ([]string, error) {
	return func(name string) ([]string, error) { return c.LookupTXT(ctx, name) }
}

func netError(name string, err error) error {
	if err == nil {
		return nil
	}
	ne := &net.DNSError{
		Err:         err.Error(),
		Name:        name,
		IsNotFound:  IsNotFound(err),
		IsTemporary: IsTemporary(err),
		UnwrapErr:   err,
	}
	var e *Error
	if errors.As(err, &e) {
		ne.Server = e.Server
		ne.IsTimeout = e.Timeout()
	}
	return ne
}
