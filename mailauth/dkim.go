package mailauth

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/idna"

	"mailstead/message"
)

// verifyDKIM verifies every DKIM-Signature of msg with go-msgauth, up to
// MaxSignatures, and reports each in header order.
func (c *Checker) verifyDKIM(ctx context.Context, fields message.Header, msg Message) []DKIMResult {
	var results []DKIMResult
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "DKIM-Signature") {
			continue
		}
		sig, err := parseDKIMSignature(f.Value())
		r := DKIMResult{
			Domain: sig.Domain, Selector: sig.Selector, Algorithm: sig.Algorithm,
			Identifier: sig.Identifier, B: sig.B,
		}
		if err != nil {
			r.Status, r.Reason = StatusPermError, "malformed signature: "+err.Error()
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return nil
	}
	max := c.MaxSignatures
	if max <= 0 {
		max = 5
	}
	verifs, err := dkim.VerifyWithOptions(io.NewSectionReader(msg, 0, msg.Size()), &dkim.VerifyOptions{
		LookupTXT:        c.Resolver.NetCompat().TXTFunc(ctx),
		MaxVerifications: max,
	})
	for i := range results {
		r := &results[i]
		switch {
		case r.Status != "":
			// Already a permerror from our own parse.
		case i >= len(verifs):
			r.Status = StatusPermError
			if errors.Is(err, dkim.ErrTooManySignatures) {
				r.Reason = "too many signatures, not verified"
			} else if err != nil {
				r.Reason = err.Error()
			} else {
				r.Reason = "not verified"
			}
		case verifs[i].Err == nil:
			r.Status = StatusPass
		case dkim.IsTempFail(verifs[i].Err):
			r.Status, r.Reason = StatusTempError, verifs[i].Err.Error()
		case dkim.IsPermFail(verifs[i].Err):
			r.Status, r.Reason = StatusPermError, verifs[i].Err.Error()
		default:
			r.Status, r.Reason = StatusFail, verifs[i].Err.Error()
		}
	}
	return results
}

// errNoFrom is the DMARC permerror for messages without exactly one author
// domain (RFC 7489 section 6.6.1).
var errNoFrom = errors.New("message has no single RFC5322.From domain")

// fromDomain returns the lower-case, A-label domain of the RFC5322.From
// field. Several From fields, or authors in several domains, are an error,
// since DMARC could not tell which to evaluate (RFC 7489 section 6.6.1).
func fromDomain(fields message.Header) (string, error) {
	var value string
	n := 0
	for _, f := range fields {
		if strings.EqualFold(f.Name, "From") {
			value = f.Value()
			n++
		}
	}
	if n != 1 {
		return "", errNoFrom
	}
	var domains []string
	if list, err := message.ParseAddressList(value); err == nil && len(list) > 0 {
		for _, a := range list {
			domains = append(domains, domainOf(a))
		}
	} else {
		// Unparseable From fields are common in spam; take the domain a
		// mail client would show, so that DMARC still applies to it.
		domains = append(domains, domainOf(message.DisplayedAddress(value)))
	}
	d := domains[0]
	for _, o := range domains[1:] {
		if o != d {
			return "", errNoFrom
		}
	}
	if strings.ContainsFunc(d, func(r rune) bool { return r >= 0x80 }) {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", errNoFrom
		}
		d = a
	}
	if !isDomainName(d) {
		return "", errNoFrom
	}
	return d, nil
}
