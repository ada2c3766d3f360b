package mailauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"mailstead/dns"
)

// Verdict is what happens to a message.
type Verdict string

// Verdicts, from best to worst for the sender.
const (
	Accept   Verdict = "accept"   // deliver to the inbox
	Junk     Verdict = "junk"     // deliver to the Junk mailbox
	Reject   Verdict = "reject"   // refuse with a 5xx reply after DATA
	TempFail Verdict = "tempfail" // refuse with a 4xx reply: try again later
)

// Reply is an SMTP reply: code, enhanced status code (RFC 3463) and text.
// Enhanced converts directly to go-smtp's EnhancedCode.
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string
}

func (r Reply) String() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// Error makes a Reply usable as an error.
func (r *Reply) Error() string { return r.String() }

// Action is the decision about one message. Reply is set for Reject and
// TempFail.
type Action struct {
	Verdict Verdict
	Reply   Reply
	Reason  string // why, for the log line
}

// Policy holds the settings that turn results into an action.
type Policy struct {
	// DMARCRejectToJunk delivers mail failing a DMARC p=reject policy to
	// Junk instead of refusing it.
	DMARCRejectToJunk bool
	// IsLocalDomain reports whether a domain is one of ours. Mail from the
	// internet claiming one of them must authenticate or is refused. Nil
	// means no domain is ours.
	IsLocalDomain func(domain string) bool
	// NoFromToJunk delivers mail without a single valid From address to
	// Junk instead of refusing it.
	NoFromToJunk bool
}

// once returns p asking IsLocalDomain at most once per domain: Decide asks about the From
// domains and then MAIL FROM's, often the same one, and each question is a store query.
func (p Policy) once() Policy {
	ask := p.IsLocalDomain
	if ask == nil {
		return p
	}
	seen := map[string]bool{}
	p.IsLocalDomain = func(d string) bool {
		local, ok := seen[d]
		if !ok {
			local = ask(d)
			seen[d] = local
		}
		return local
	}
	return p
}

// Decide turns results into an action, first rule that applies wins:
//
//  1. the IP is on a DNSBL zone marked Reject: 550 5.7.1; other zones: Junk
//  2. From, Sender, Resent-From or Resent-Sender shows an address in one of
//     our domains (also in a display name), or MAIL FROM is in one, and that
//     domain is not authenticated (no aligned SPF or DKIM pass): 550 5.7.1;
//     451 4.7.0 if a check failed temporarily; then, without a single valid
//     From address (RFC 5322 §3.6): 550 5.7.1, or Junk when NoFromToJunk
//  3. DMARC could not be evaluated because of a temporary DNS failure and
//     the domain asks for more than p=none, or SPF failed temporarily
//     without a DKIM pass: 451 (never bounce on a DNS hiccup)
//  4. DMARC fail with p=reject (after pct): 550 5.7.1 (RFC 7489 section
//     6.6.4), or Junk when DMARCRejectToJunk
//  5. DMARC fail with p=quarantine: Junk
//  6. SPF fail without any DKIM pass: Junk (RFC 7208 section 8.4 leaves
//     the choice to the receiver)
//  7. otherwise Accept
func (p Policy) Decide(r *Result, zones []DNSBLZone) Action {
	for _, listed := range r.DNSBL {
		for _, z := range zones {
			if z.Zone == listed && z.Reject {
				return Action{Verdict: Reject, Reason: "dnsbl " + listed,
					Reply: Reply{550, [3]int{5, 7, 1}, "Client IP is listed at " + listed}}
			}
		}
	}
	dkimPass, dkimTemp := false, false
	for _, d := range r.DKIM {
		dkimPass = dkimPass || d.Status == StatusPass
		dkimTemp = dkimTemp || d.Status == StatusTempError
	}
	tempfail := func(reason string, enh int) Action {
		return Action{Verdict: TempFail, Reason: reason,
			Reply: Reply{451, [3]int{4, 7, enh}, "Temporary DNS failure while authenticating the sender, try again later"}}
	}

	if p.IsLocalDomain != nil {
		dm := r.DMARC
		if d := p.unauthenticatedOwnDomain(r); d != "" {
			if r.SPF.Status == StatusTempError || dkimTemp || dm.Status == StatusTempError {
				return tempfail("own From domain, check failed temporarily", 0)
			}
			return Action{Verdict: Reject, Reason: "unauthenticated mail from own domain " + d,
				Reply: Reply{550, [3]int{5, 7, 1}, "Message claims to be from " + d + " but is not authenticated"}}
		}
		if md := r.SPF.Domain; r.SPF.Identity == "mailfrom" && r.SPF.Sender != "" && md != "" && p.IsLocalDomain(md) && r.SPF.Status != StatusPass {
			dkimOwn := false
			for _, d := range r.DKIM {
				dkimOwn = dkimOwn || (d.Status == StatusPass && aligned(d.Domain, md, "r"))
			}
			if !dkimOwn {
				if r.SPF.Status == StatusTempError {
					return tempfail("own MAIL FROM domain, SPF temperror", 24)
				}
				return Action{Verdict: Reject, Reason: "unauthenticated MAIL FROM in own domain " + md,
					Reply: Reply{550, [3]int{5, 7, 1}, "Sender address in " + md + " is not authenticated"}}
			}
		}
	}

	if prob := r.Identity.FromProblem; prob != "" {
		if p.NoFromToJunk {
			return Action{Verdict: Junk, Reason: "no single valid From address: " + prob}
		}
		return Action{Verdict: Reject, Reason: "no single valid From address: " + prob,
			Reply: Reply{550, [3]int{5, 7, 1}, "Message must have exactly one valid From: address (RFC 5322 section 3.6): " + prob}}
	}

	dm := r.DMARC
	if dm.Status == StatusTempError && dm.Policy != "none" {
		return tempfail("dmarc temperror: "+dm.Reason, 0)
	}
	if r.SPF.Status == StatusTempError && !dkimPass && dm.Status != StatusPass {
		return tempfail("spf temperror: "+r.SPF.Reason, 24)
	}
	if dm.Status == StatusFail {
		switch dm.Applied {
		case "reject":
			if p.DMARCRejectToJunk {
				return Action{Verdict: Junk, Reason: "dmarc p=reject (to junk by setting)"}
			}
			return Action{Verdict: Reject, Reason: "dmarc p=reject",
				Reply: Reply{550, [3]int{5, 7, 1}, "DMARC policy of " + dm.FromDomain + " rejects this unauthenticated message"}}
		case "quarantine":
			return Action{Verdict: Junk, Reason: "dmarc p=quarantine"}
		}
	}
	if r.SPF.Status == StatusFail && !dkimPass {
		return Action{Verdict: Junk, Reason: "spf fail without dkim pass"}
	}
	if dm.Status == StatusPermError && dm.FromDomain == "" {
		return Action{Verdict: Junk, Reason: "no single From domain"}
	}
	if len(r.DNSBL) > 0 {
		return Action{Verdict: Junk, Reason: "dnsbl " + r.DNSBL[0]}
	}
	return Action{Verdict: Accept}
}

// CheckSender checks the domain of a MAIL FROM address before accepting
// the transaction: it must be able to receive replies (RFC 5321 section
// 4.5.5 bounces, RFC 7505). It returns nil when the sender may go on, and
// otherwise the reply to give:
//
//   - null MX: 550 5.7.27 (RFC 7505 section 4.2)
//   - no MX, A or AAAA (the name does not exist, or has none): 550 5.1.8
//   - DNS failure: 450 4.4.3, so the sender tries again later
//
// The null sender <> and address literals are not checked.
func (c *Checker) CheckSender(ctx context.Context, mailFrom string) *Reply {
	domain := domainOf(mailFrom)
	if mailFrom == "" || domain == "" || strings.HasPrefix(domain, "[") {
		return nil
	}
	tempReply := &Reply{450, [3]int{4, 4, 3}, "Temporary DNS failure looking up sender domain " + domain + ", try again later"}
	noDomain := &Reply{550, [3]int{5, 1, 8}, "Sender domain " + domain + " has no MX or address record"}
	_, err := c.Resolver.LookupMX(ctx, domain)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dns.ErrNullMX):
		return &Reply{550, [3]int{5, 7, 27}, "Sender domain " + domain + " accepts no mail (null MX)"}
	case dns.IsTemporary(err):
		return tempReply
	case dns.IsNXDomain(err):
		return noDomain
	case !dns.IsNotFound(err):
		return tempReply
	}
	// No MX: the domain itself is the implicit MX (RFC 5321 section 5.1).
	_, err = c.Resolver.LookupIP(ctx, domain)
	switch {
	case err == nil:
		return nil
	case dns.IsNotFound(err):
		return noDomain
	default:
		return tempReply
	}
}

// unauthenticatedOwnDomain returns the first of our domains that the message claims in its
// identity fields (or its DMARC From domain) without authenticating as it: no SPF pass and no
// DKIM pass for a domain aligned with it (relaxed, RFC 7489 §3.1; for the From domain, the
// alignment its DMARC record asks for). "" when every claim is backed.
func (p Policy) unauthenticatedOwnDomain(r *Result) string {
	dm := r.DMARC
	claims := []string{dm.FromDomain}
	for _, a := range r.Identity.Shown {
		claims = append(claims, domainOf(a))
	}
	for _, d := range claims {
		if d == "" || !p.IsLocalDomain(d) {
			continue
		}
		if d == dm.FromDomain && (dm.SPFAligned || dm.DKIMAligned) {
			continue
		}
		ok := r.SPF.Status == StatusPass && aligned(r.SPF.Domain, d, "r")
		for _, k := range r.DKIM {
			ok = ok || (k.Status == StatusPass && aligned(k.Domain, d, "r"))
		}
		if !ok {
			return d
		}
	}
	return ""
}
