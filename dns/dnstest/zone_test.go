package dnstest

import (
	"testing"

	mdns "github.com/miekg/dns"
)

// ask sends one raw query to the zone, the way a stub resolver would.
func ask(t *testing.T, z *Zone, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	c := &mdns.Client{Net: network}
	r, _, err := c.Exchange(m, z.Addr())
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, mdns.TypeToString[qtype], err)
	}
	return r
}

func TestZoneAnswers(t *testing.T) {
	z := NewZone(t)
	z.Add(
		"b.test. 300 IN MX 10 mx.b.test.",
		"mx.b.test. 300 IN A 127.0.0.2",
		"www.b.test. 300 IN CNAME mx.b.test.",
		"s._domainkey.b.test. 300 IN TXT \"v=DKIM1; p=\"",
	)
	z.SetFailure("bad.test", mdns.RcodeServerFailure)

	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
	}{
		{"b.test", mdns.TypeMX, mdns.RcodeSuccess, 1},
		{"B.TEST", mdns.TypeMX, mdns.RcodeSuccess, 1},             // case-insensitive
		{"b.test", mdns.TypeAAAA, mdns.RcodeSuccess, 0},           // NODATA
		{"_domainkey.b.test", mdns.TypeTXT, mdns.RcodeSuccess, 0}, // empty non-terminal
		{"www.b.test", mdns.TypeA, mdns.RcodeSuccess, 2},          // CNAME + A
		{"nowhere.b.test", mdns.TypeA, mdns.RcodeNameError, 0},
		{"bad.test", mdns.TypeA, mdns.RcodeServerFailure, 0},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			r := ask(t, z, network, tc.name, tc.qtype)
			if r.Rcode != tc.rcode || len(r.Answer) != tc.answers || !r.Authoritative {
				t.Errorf("%s %s %s: rcode %s, %d answers, aa=%v; want %s, %d",
					network, tc.name, mdns.TypeToString[tc.qtype], mdns.RcodeToString[r.Rcode],
					len(r.Answer), r.Authoritative, mdns.RcodeToString[tc.rcode], tc.answers)
			}
		}
	}
}

func TestZoneTruncatesUDP(t *testing.T) {
	z := NewZone(t)
	for range 30 {
		z.AddTXT("big.test", string(make([]byte, 100)))
	}
	if r := ask(t, z, "udp", "big.test", mdns.TypeTXT); !r.Truncated {
		t.Errorf("3 kB answer over 512-byte UDP not truncated (%d answers)", len(r.Answer))
	}
	if r := ask(t, z, "tcp", "big.test", mdns.TypeTXT); r.Truncated || len(r.Answer) != 30 {
		t.Errorf("TCP answer truncated=%v with %d answers, want 30", r.Truncated, len(r.Answer))
	}
}
