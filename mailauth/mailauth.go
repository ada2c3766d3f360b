// Package mailauth owns sender authentication of mail arriving from the
// internet (SPF, DKIM, DMARC, iprev, DNSBL, the Authentication-Results
// header and the accept/junk/reject/tempfail decision) and DKIM signing of
// outbound mail. It must never speak SMTP or touch the store, and makes every
// DNS query through package dns.
//
// The SMTP receiver calls Checker.CheckSender at MAIL FROM, Checker.Check
// after DATA, and Checker.Stamp on the message it stores; the queue calls
// Sign.
package mailauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"mailstead/dns"
	"mailstead/message"
)

// Status is a result value as written in Authentication-Results (RFC 8601
// section 2.7).
type Status string

// Result values.
const (
	StatusPass      Status = "pass"
	StatusFail      Status = "fail"
	StatusSoftFail  Status = "softfail" // SPF only
	StatusNeutral   Status = "neutral"
	StatusNone      Status = "none"
	StatusTempError Status = "temperror"
	StatusPermError Status = "permerror"
)

// SPFResult is the SPF (RFC 7208) result for one identity.
type SPFResult struct {
	Status   Status
	Identity string // "mailfrom" or "helo"
	Domain   string // the domain whose policy was evaluated
	Sender   string // the address checked: MAIL FROM or postmaster@HELO; "" for the null sender
	Reason   string // detail for errors, empty otherwise
}

// DKIMResult is the verification result of one DKIM-Signature (RFC 6376).
type DKIMResult struct {
	Status     Status
	Domain     string // d=, the signing domain (SDID)
	Selector   string // s=
	Algorithm  string // a=
	Identifier string // i=
	B          string // b=, the signature, for header.b (RFC 6008)
	Reason     string
}

// DMARCResult is the DMARC (RFC 7489) evaluation of the RFC5322.From domain.
type DMARCResult struct {
	Status       Status
	FromDomain   string // RFC5322.From domain, lower case
	PolicyDomain string // where the record was found: FromDomain or its organisational domain
	// Policy is the requested policy for FromDomain ("none", "quarantine",
	// "reject"; sp= when the record came from the organisational domain),
	// empty without a record.
	Policy string
	// Applied is the policy applied to this failing message after pct=
	// sampling (RFC 7489 section 6.6.4): Policy, or the next lower one.
	Applied     string
	Percent     int
	SPFAligned  bool // SPF passed for a domain aligned with FromDomain
	DKIMAligned bool // a DKIM signature of an aligned domain passed
	Reason      string
}

// IPRevResult is the forward-confirmed reverse DNS result (RFC 8601
// section 3) of the connecting IP.
type IPRevResult struct {
	Status Status
	IP     string
	Names  []string // PTR names that resolve back to IP
	Reason string
}

// Input is what the SMTP receiver knows about one message.
type Input struct {
	IP       net.IP
	Helo     string   // EHLO/HELO argument
	MailFrom string   // MAIL FROM address, "" for the null sender <>
	Rcpts    []string // RCPT TO addresses, for the log line
	// Message is the message as received (CRLF line endings). It is read through ReadAt so that
	// a message spooled to disk is checked without being loaded whole: the header section is
	// read once, and DKIM hashes the body as a stream. bytes.NewReader(msg) suits one in memory.
	Message Message
	// Header is Message's header section (message.ReadHeaderAt) when the caller has read it
	// already, so it is not read again; nil reads it from Message.
	Header []byte
}

// header returns the message's header section, read from Message unless the caller gave it.
func (in Input) header() ([]byte, error) {
	if in.Header != nil || in.Message == nil {
		return in.Header, nil
	}
	return message.ReadHeaderAt(in.Message, in.Message.Size())
}

// Message is a received message, in memory or spooled to a file.
type Message interface {
	io.ReaderAt
	Size() int64
}

// Result is everything Check found out, the decision and the header to add.
type Result struct {
	SPF     SPFResult // MAIL FROM identity (HELO's result when MAIL FROM is <>)
	HeloSPF SPFResult // HELO identity (Status none when HELO is not a domain)
	DKIM    []DKIMResult
	DMARC   DMARCResult
	IPRev   IPRevResult
	DNSBL   []string // DNSBL zones listing the IP
	// Identity is who the message says it is from (From, Sender, Resent-From).
	Identity Identity
	Action   Action
	// Header is the Authentication-Results field, with its CRLF, to put
	// on top of the message (see Checker.Stamp).
	Header string
}

// DNSBLZone is one DNS block list to query (RFC 5782) and what a listing
// means.
type DNSBLZone struct {
	Zone   string // for example "zen.example.org"
	Reject bool   // refuse listed mail (550) instead of sending it to Junk
}

// Checker verifies incoming mail. Build it once; it is safe for concurrent
// use.
type Checker struct {
	Resolver *dns.Resolver
	// Hostname is our host name, used as authserv-id in
	// Authentication-Results (RFC 8601 section 2.5).
	Hostname string
	Policy   Policy
	// DNSBL zones to query; none by default.
	DNSBL []DNSBLZone
	// MaxSignatures is how many DKIM signatures are verified (default 5);
	// further ones are reported as permerror.
	MaxSignatures int
}

// Check authenticates one message received on port 25 and decides what to
// do with it. DNS failures show up as temperror results and a TempFail
// action, not as an error; the error is only for unusable input.
func (c *Checker) Check(ctx context.Context, in Input) (*Result, error) {
	if c.Resolver == nil {
		return nil, errors.New("mailauth: checker has no resolver")
	}
	if in.IP == nil || in.IP.To16() == nil {
		return nil, fmt.Errorf("mailauth: invalid client IP %v", in.IP)
	}
	if in.Message == nil {
		return nil, errors.New("mailauth: no message")
	}
	header, err := in.header()
	if err != nil {
		return nil, fmt.Errorf("mailauth: read header: %w", err)
	}
	// One parse of the header serves the identity, DMARC's From domain and DKIM.
	fields, _ := message.ParseHeader(header)
	res := &Result{Identity: identityOf(fields)}
	fromDomain, fromErr := fromDomain(fields)

	var wg sync.WaitGroup
	var policy dmarcPolicy
	wg.Go(func() { res.SPF, res.HeloSPF = c.checkSPF(ctx, in.IP, in.Helo, in.MailFrom) })
	wg.Go(func() { res.DKIM = c.verifyDKIM(ctx, fields, in.Message) })
	wg.Go(func() { res.IPRev = c.checkIPRev(ctx, in.IP) })
	if len(c.DNSBL) > 0 {
		wg.Go(func() {
			zones := make([]string, len(c.DNSBL))
			for i, z := range c.DNSBL {
				zones[i] = z.Zone
			}
			res.DNSBL, _ = CheckDNSBL(ctx, c.Resolver, in.IP, zones)
		})
	}
	if fromErr == nil {
		wg.Go(func() { policy = c.lookupDMARC(ctx, fromDomain) })
	}
	wg.Wait()

	if fromErr != nil {
		res.DMARC = DMARCResult{Status: StatusPermError, Reason: fromErr.Error()}
	} else {
		res.DMARC = evaluateDMARC(fromDomain, policy, res.SPF, res.DKIM)
	}
	res.Action = c.Policy.once().Decide(res, c.DNSBL)
	res.Header = c.authResultsHeader(res)
	return res, nil
}

// Stamp returns the message to store: our Authentication-Results header on
// top, and any incoming Authentication-Results claiming our authserv-id
// removed (RFC 8601 section 5). msg may be the header section alone: only
// header fields change, so a large body can follow it unread.
func (c *Checker) Stamp(msg []byte, r *Result) []byte {
	msg = RemoveAuthResults(msg, c.Hostname)
	out := make([]byte, 0, len(r.Header)+len(msg))
	out = append(out, r.Header...)
	return append(out, msg...)
}

// domainOf returns the lower-case domain of an address, without a trailing
// dot; "" when there is none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}
