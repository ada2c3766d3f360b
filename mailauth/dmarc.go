package mailauth

import (
	"context"
	"math/rand/v2"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"mailstead/dns"
)

// dmarcPolicy is the outcome of DMARC policy discovery.
type dmarcPolicy struct {
	record *dmarc.Record
	domain string // where the record was found
	org    bool   // found at the organisational domain: sp= applies
	status Status // "" when found or none; temperror / permerror
	reason string
}

// OrgDomain returns the organisational domain of a domain name (RFC 7489
// section 3.2): the public suffix plus one label, or the name itself when
// it is a public suffix or unknown.
func OrgDomain(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// lookupDMARC does policy discovery (RFC 7489 section 6.6.3): the record at
// _dmarc.<From domain>, else at _dmarc.<organisational domain>.
func (c *Checker) lookupDMARC(ctx context.Context, fromDomain string) dmarcPolicy {
	p := c.lookupDMARCAt(ctx, fromDomain)
	if p.record != nil || p.status != "" {
		return p
	}
	if org := OrgDomain(fromDomain); org != fromDomain {
		p = c.lookupDMARCAt(ctx, org)
		p.org = true
	}
	return p
}

func (c *Checker) lookupDMARCAt(ctx context.Context, domain string) dmarcPolicy {
	p := dmarcPolicy{domain: domain}
	txts, err := c.Resolver.LookupTXT(ctx, "_dmarc."+domain)
	switch {
	case dns.IsNotFound(err):
		return p
	case dns.IsTemporary(err):
		p.status, p.reason = StatusTempError, err.Error()
		return p
	case err != nil:
		p.status, p.reason = StatusPermError, err.Error()
		return p
	}
	// Step 5: records not starting with "v=DMARC1" are discarded; step 6:
	// more than one remaining means no DMARC processing.
	var recs []string
	for _, t := range txts {
		if v, _, _ := strings.Cut(t, ";"); strings.EqualFold(strings.ReplaceAll(v, " ", ""), "v=DMARC1") {
			recs = append(recs, t)
		}
	}
	switch len(recs) {
	case 0:
		return p
	case 1:
	default:
		p.status, p.reason = StatusPermError, "several DMARC records at "+domain
		return p
	}
	rec, err := dmarc.Parse(recs[0])
	if err != nil {
		// Section 6.6.3: a record without a valid p= is not applied.
		p.status, p.reason = StatusPermError, err.Error()
		return p
	}
	p.record = rec
	return p
}

// evaluateDMARC applies identifier alignment (RFC 7489 section 3.1) to the
// SPF and DKIM results: pass when either passed for an aligned domain.
// Alignment is computed even without a DMARC record, for the own-domain
// rule of Policy.Decide.
func evaluateDMARC(from string, p dmarcPolicy, spfRes SPFResult, dkimRes []DKIMResult) DMARCResult {
	r := DMARCResult{FromDomain: from, PolicyDomain: p.domain, Percent: 100}
	spfMode, dkimMode := dmarc.AlignmentMode(dmarc.AlignmentRelaxed), dmarc.AlignmentMode(dmarc.AlignmentRelaxed)
	if p.record != nil {
		spfMode, dkimMode = p.record.SPFAlignment, p.record.DKIMAlignment
		r.Policy = string(p.record.Policy)
		if p.org && p.record.SubdomainPolicy != "" {
			r.Policy = string(p.record.SubdomainPolicy)
		}
		if p.record.Percent != nil {
			r.Percent = *p.record.Percent
		}
	}
	// Section 3.1.2: only the MAIL FROM identity counts for SPF alignment
	// (with a null MAIL FROM, that is postmaster@HELO, RFC 7208 section 2.4).
	spfTemp := false
	if aligned(spfRes.Domain, from, spfMode) {
		r.SPFAligned = spfRes.Status == StatusPass
		spfTemp = spfRes.Status == StatusTempError
	}
	dkimTemp := false
	for _, d := range dkimRes {
		if aligned(d.Domain, from, dkimMode) {
			if d.Status == StatusPass {
				r.DKIMAligned = true
			}
			dkimTemp = dkimTemp || d.Status == StatusTempError
		}
	}
	switch {
	case p.record == nil && p.status == "":
		r.Status = StatusNone
	case r.SPFAligned || r.DKIMAligned:
		// Whatever the policy, an aligned pass passes.
		r.Status = StatusPass
	case p.status != "":
		r.Status, r.Reason = p.status, p.reason
	case spfTemp || dkimTemp:
		r.Status, r.Reason = StatusTempError, "an aligned check failed temporarily"
	default:
		r.Status = StatusFail
		r.Applied = samplePolicy(r.Policy, r.Percent)
	}
	return r
}

// aligned reports whether domain is aligned with the From domain: equal in
// strict mode, same organisational domain in relaxed mode.
func aligned(domain, from string, mode dmarc.AlignmentMode) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" {
		return false
	}
	if domain == from {
		return true
	}
	return mode != dmarc.AlignmentStrict && OrgDomain(domain) == OrgDomain(from)
}

// samplePolicy applies pct= (RFC 7489 section 6.6.4): a failing message
// outside the sampled percentage gets the next lower policy.
func samplePolicy(policy string, pct int) string {
	if pct >= 100 || policy == "" || policy == "none" || rand.IntN(100) < pct {
		return policy
	}
	if policy == "reject" {
		return "quarantine"
	}
	return "none"
}
