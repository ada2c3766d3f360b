package mailtest

import (
	"testing"

	"mailstead/dns/dnstest"
)

// DNSZone is a fake authoritative DNS zone on 127.0.0.1 (UDP and TCP) that
// tests fill with records: Add("b.test. 300 IN MX 10 mx.b.test."), AddTXT,
// AddPTR, Remove, SetFailure (SERVFAIL and friends, or DropQuery), Clear.
// Unknown names answer NXDOMAIN, known names without the asked type answer
// NOERROR with no records. See package dns/dnstest, which implements it.
type DNSZone = dnstest.Zone

// DropQuery as the rcode of DNSZone.SetFailure makes the zone not answer at
// all for that name, so the client times out.
const DropQuery = dnstest.DropQuery

// NewDNSZone starts a fake zone on a free loopback port; t.Cleanup stops it.
// Give z.Addr() to dns.New or to the server's --dns option.
func NewDNSZone(t testing.TB) *DNSZone { return dnstest.NewZone(t) }
