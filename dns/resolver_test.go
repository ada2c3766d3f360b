package dns_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"mailstead/dns"
	"mailstead/dns/dnstest"
)

func newZone(t *testing.T) (*dnstest.Zone, *dns.Resolver) {
	t.Helper()
	z := dnstest.NewZone(t)
	r := dns.New(z.Addr())
	r.Timeout = 500 * time.Millisecond
	r.Attempts = 1
	return z, r
}

func TestLookupMXSortedAndNull(t *testing.T) {
	z, r := newZone(t)
	ctx := context.Background()
	z.Add(
		"b.test. 300 IN MX 20 mx2.b.test.",
		"b.test. 300 IN MX 5 mx0.b.test.",
		"b.test. 300 IN MX 10 mx1.b.test.",
		"null.test. 300 IN MX 0 .",
		"null.test. 300 IN A 192.0.2.1",
	)
	mx, err := r.LookupMX(ctx, "B.test")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mx {
		got = append(got, m.Host)
	}
	if want := []string{"mx0.b.test", "mx1.b.test", "mx2.b.test"}; !slices.Equal(got, want) {
		t.Errorf("MX order = %v, want %v", got, want)
	}

	_, err = r.LookupMX(ctx, "null.test")
	if !errors.Is(err, dns.ErrNullMX) || dns.IsNotFound(err) || dns.IsTemporary(err) {
		t.Errorf("null MX: err = %v, want ErrNullMX only", err)
	}
}

func TestErrorKinds(t *testing.T) {
	z, r := newZone(t)
	ctx := context.Background()
	z.Add("exists.test. 300 IN A 192.0.2.1", "deep.ent.test. 300 IN A 192.0.2.2")
	z.SetFailure("broken.test", 2)  // SERVFAIL
	z.SetFailure("refused.test", 5) // REFUSED
	z.SetFailure("silent.test", dnstest.DropQuery)

	tests := []struct {
		name                       string
		notFound, noRecords, nxdom bool
		temporary                  bool
	}{
		{"nowhere.test", true, false, true, false},
		{"exists.test", true, true, false, false},
		{"ent.test", true, true, false, false}, // empty non-terminal: NODATA
		{"broken.test", false, false, false, true},
		{"refused.test", false, false, false, true},
		{"silent.test", false, false, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.LookupMX(ctx, tc.name)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, dns.ErrNotFound); got != tc.notFound {
				t.Errorf("Is(ErrNotFound) = %v (%v)", got, err)
			}
			if got := errors.Is(err, dns.ErrNoRecords); got != tc.noRecords {
				t.Errorf("Is(ErrNoRecords) = %v (%v)", got, err)
			}
			if got := dns.IsNXDomain(err); got != tc.nxdom {
				t.Errorf("IsNXDomain = %v (%v)", got, err)
			}
			if got := dns.IsTemporary(err); got != tc.temporary {
				t.Errorf("IsTemporary = %v (%v)", got, err)
			}
			// The net-style view used by the SPF/DKIM/DMARC libraries.
			_, nerr := r.NetCompat().LookupTXT(ctx, tc.name)
			var de *net.DNSError
			if !errors.As(nerr, &de) {
				t.Fatalf("NetCompat error %T, want *net.DNSError", nerr)
			}
			if de.IsNotFound != tc.notFound || de.Temporary() != tc.temporary {
				t.Errorf("net.DNSError notfound=%v temporary=%v, want %v %v", de.IsNotFound, de.Temporary(), tc.notFound, tc.temporary)
			}
		})
	}
}

func TestLookupContextCancelled(t *testing.T) {
	z, r := newZone(t)
	z.Add("a.test. 300 IN A 192.0.2.1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.LookupIP(ctx, "a.test")
	if !dns.IsTemporary(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled lookup: err = %v, want temporary wrapping context.Canceled", err)
	}
}

func TestLookupTXTLongAndTCPFallback(t *testing.T) {
	z, r := newZone(t)
	ctx := context.Background()
	long := strings.Repeat("a", 300) + strings.Repeat("b", 300)
	z.Add(`multi.test. 300 IN TXT "v=spf1 " "ip4:192.0.2.0/24 " "-all"`)
	z.Add(`long.test. 300 IN TXT "` + long + `"`) // split by the zone parser
	z.AddTXT("long2.test", long)
	// Forty 200-byte records do not fit in 1232 bytes of UDP: TC, then TCP.
	for i := range 40 {
		z.AddTXT("big.test", strings.Repeat(string(rune('a'+i%26)), 200))
	}
	got, err := r.LookupTXT(ctx, "multi.test")
	if err != nil || len(got) != 1 || got[0] != "v=spf1 ip4:192.0.2.0/24 -all" {
		t.Errorf("multi-string TXT = %q, %v", got, err)
	}
	for _, name := range []string{"long.test", "long2.test"} {
		got, err = r.LookupTXT(ctx, name)
		if err != nil || len(got) != 1 || got[0] != long {
			t.Errorf("%s: long TXT = %d records, %v", name, len(got), err)
		}
	}
	got, err = r.LookupTXT(ctx, "big.test")
	if err != nil || len(got) != 40 {
		t.Errorf("big TXT over TCP = %d records, %v; want 40", len(got), err)
	}
}

func TestLookupIPAndPTR(t *testing.T) {
	z, r := newZone(t)
	ctx := context.Background()
	z.Add(
		"mx.b.test. 300 IN A 192.0.2.25",
		"mx.b.test. 300 IN AAAA 2001:db8::25",
		"v6only.test. 300 IN AAAA 2001:db8::1",
		"alias.test. 300 IN CNAME mx.b.test.",
	)
	z.AddPTR("192.0.2.25", "mx.b.test")
	z.AddPTR("2001:db8::25", "mx.b.test", "other.b.test")

	ips, err := r.LookupIP(ctx, "mx.b.test")
	if err != nil || len(ips) != 2 || !ips[0].Equal(net.ParseIP("192.0.2.25")) || !ips[1].Equal(net.ParseIP("2001:db8::25")) {
		t.Errorf("LookupIP = %v, %v", ips, err)
	}
	ips, err = r.LookupIP(ctx, "v6only.test")
	if err != nil || len(ips) != 1 || !ips[0].Equal(net.ParseIP("2001:db8::1")) {
		t.Errorf("LookupIP v6 only = %v, %v", ips, err)
	}
	ips, err = r.LookupIP(ctx, "alias.test")
	if err != nil || len(ips) != 2 {
		t.Errorf("LookupIP through CNAME = %v, %v", ips, err)
	}
	if target, err := r.LookupCNAME(ctx, "alias.test"); err != nil || target != "mx.b.test" {
		t.Errorf("LookupCNAME = %q, %v", target, err)
	}
	if _, err := r.LookupIP(ctx, "nowhere.test"); !dns.IsNXDomain(err) {
		t.Errorf("LookupIP nowhere: %v", err)
	}

	names, err := r.LookupAddr(ctx, net.ParseIP("192.0.2.25"))
	if err != nil || !slices.Equal(names, []string{"mx.b.test"}) {
		t.Errorf("PTR v4 = %v, %v", names, err)
	}
	names, err = r.LookupAddr(ctx, net.ParseIP("2001:db8::25"))
	if err != nil || !slices.Equal(names, []string{"mx.b.test", "other.b.test"}) {
		t.Errorf("PTR v6 = %v, %v", names, err)
	}
	if _, err := r.LookupAddr(ctx, net.ParseIP("192.0.2.99")); !dns.IsNotFound(err) {
		t.Errorf("PTR missing: %v", err)
	}
	// net-style names keep the trailing dot, like net.Resolver.
	nn, err := r.NetCompat().LookupAddr(ctx, "192.0.2.25")
	if err != nil || !slices.Equal(nn, []string{"mx.b.test."}) {
		t.Errorf("NetCompat PTR = %v, %v", nn, err)
	}
}

func TestLookupSRVAndTLSA(t *testing.T) {
	z, r := newZone(t)
	ctx := context.Background()
	z.Add(
		"_imaps._tcp.b.test. 300 IN SRV 10 5 993 imap2.b.test.",
		"_imaps._tcp.b.test. 300 IN SRV 0 1 993 imap.b.test.",
		"_imaps._tcp.b.test. 300 IN SRV 10 50 993 imap1.b.test.",
		"_25._tcp.mx.b.test. 300 IN TLSA 3 1 1 0123456789abcdef",
	)
	srv, err := r.LookupSRV(ctx, "imaps", "tcp", "b.test")
	if err != nil || len(srv) != 3 || srv[0].Target != "imap.b.test" || srv[1].Target != "imap1.b.test" {
		t.Errorf("SRV = %v, %v", srv, err)
	}
	recs, ad, err := r.LookupTLSA(ctx, 25, "tcp", "mx.b.test")
	if err != nil || len(recs) != 1 || ad {
		t.Fatalf("TLSA = %v, ad=%v, %v", recs, ad, err)
	}
	if got := recs[0]; got.Usage != 3 || got.Selector != 1 || got.MatchingType != 1 || len(got.Data) != 8 {
		t.Errorf("TLSA record = %+v", got)
	}
}

func TestZoneRemoveAndClear(t *testing.T) {
	z, r := newZone(t)
	ctx := context.Background()
	z.Add("b.test. 300 IN MX 10 mx.b.test.", "b.test. 300 IN A 192.0.2.1")
	z.Remove("b.test", "MX")
	if _, err := r.LookupMX(ctx, "b.test"); !errors.Is(err, dns.ErrNoRecords) {
		t.Errorf("after Remove MX: %v, want NODATA", err)
	}
	z.SetFailure("b.test", 2)
	if _, err := r.LookupIP(ctx, "b.test"); !dns.IsTemporary(err) {
		t.Errorf("after SetFailure: %v, want temporary", err)
	}
	z.SetFailure("b.test", 0)
	if _, err := r.LookupIP(ctx, "b.test"); err != nil {
		t.Errorf("after clearing failure: %v", err)
	}
	z.Clear()
	if _, err := r.LookupIP(ctx, "b.test"); !dns.IsNXDomain(err) {
		t.Errorf("after Clear: %v, want NXDOMAIN", err)
	}
}

func TestInternationalAndInvalidNames(t *testing.T) {
	z, r := newZone(t)
	ctx := context.Background()
	z.Add("xn--bcher-kva.test. 300 IN MX 10 mx.xn--bcher-kva.test.")
	mx, err := r.LookupMX(ctx, "bücher.test")
	if err != nil || len(mx) != 1 || mx[0].Host != "mx.xn--bcher-kva.test" {
		t.Errorf("IDN MX = %v, %v", mx, err)
	}
	for _, name := range []string{"", strings.Repeat("a", 64) + ".test", "bad..test", "\xff.test"} {
		_, err := r.LookupMX(ctx, name)
		if !dns.IsNXDomain(err) || dns.IsTemporary(err) {
			t.Errorf("%q: err = %v, want not found and not temporary", name, err)
		}
	}
}

func TestLookupCAA(t *testing.T) {
	z, r := newZone(t)
	z.Add(`example.test. 300 IN CAA 0 issue "letsencrypt.org; validationmethods=tls-alpn-01"`,
		`example.test. 300 IN CAA 128 iodef "mailto:ops@example.test"`)
	got, err := r.LookupCAA(context.Background(), "example.test")
	if err != nil || len(got) != 2 {
		t.Fatalf("LookupCAA = %+v, %v", got, err)
	}
	if got[0] != (dns.CAA{0, "issue", "letsencrypt.org; validationmethods=tls-alpn-01"}) || got[1].Flag != 128 || got[1].Tag != "iodef" {
		t.Fatalf("records %+v", got)
	}
	if _, err := r.LookupCAA(context.Background(), "nothing.example.test"); !dns.IsNotFound(err) {
		t.Fatalf("missing name: %v", err)
	}
}
