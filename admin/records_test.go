package admin

import (
	"net"
	"regexp"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func testInput() RecordInput {
	return RecordInput{
		Hostname: "mail.example.test", Domain: "example.test",
		IPs:   []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::a")},
		Ports: StandardPorts, MTASTSMode: "enforce", CAAIssuer: "letsencrypt.org",
		DKIM: []DKIMKey{{Selector: "r20260101", TXT: "v=DKIM1; k=rsa; p=" + strings.Repeat("B", 392)},
			{Selector: "e20260101", TXT: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}},
	}
}

// Every record must be a valid zone-file line: miekg/dns parses it as the type it claims.
func TestRecordsParseAsZoneLines(t *testing.T) {
	in := testInput()
	recs := append(ServerRecords(in), DomainRecords(in)...)
	seen := map[string]int{}
	for _, r := range recs {
		rr, err := mdns.NewRR(r.Zone())
		if err != nil {
			t.Errorf("%q does not parse: %v", r.Zone(), err)
			continue
		}
		if got := mdns.TypeToString[rr.Header().Rrtype]; got != r.Type {
			t.Errorf("%q parsed as %s", r.Zone(), got)
		}
		if r.Reason == "" || strings.Contains(r.Reason, "\n") {
			t.Errorf("%s %s: reason %q is not one line", r.Type, r.Name, r.Reason)
		}
		seen[r.Type]++
		if txt, ok := rr.(*mdns.TXT); ok {
			for _, s := range txt.Txt {
				if len(s) > 255 {
					t.Errorf("TXT string longer than 255 bytes (RFC 1035 §3.3.14): %d", len(s))
				}
			}
		}
	}
	want := map[string]int{"A": 1, "AAAA": 1, "PTR": 2, "MX": 1, "TXT": 6, "CNAME": 3, "SRV": 6, "CAA": 1}
	for typ, n := range want {
		if seen[typ] != n {
			t.Errorf("%d %s records, want %d", seen[typ], typ, n)
		}
	}
}

func TestRecordValues(t *testing.T) {
	in := testInput()
	recs := append(ServerRecords(in), DomainRecords(in)...)
	byName := map[string]Record{}
	for _, r := range recs {
		byName[r.Type+" "+r.Name] = r
	}
	cases := []struct{ key, value string }{
		{"MX example.test.", "10 mail.example.test."},
		{"A mail.example.test.", "192.0.2.10"},
		{"AAAA mail.example.test.", "2001:db8::a"},
		{"PTR 10.2.0.192.in-addr.arpa.", "mail.example.test."},
		{"PTR a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "mail.example.test."},
		{"TXT _dmarc.example.test.", `"v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@example.test"`},
		{"TXT _smtp._tls.example.test.", `"v=TLSRPTv1; rua=mailto:postmaster@example.test"`},
		{"SRV _submissions._tcp.example.test.", "0 1 465 mail.example.test."},
		{"SRV _submission._tcp.example.test.", "10 1 587 mail.example.test."},
		{"SRV _imaps._tcp.example.test.", "0 1 993 mail.example.test."},
		{"SRV _imap._tcp.example.test.", "10 1 143 mail.example.test."},
		{"SRV _pop3s._tcp.example.test.", "20 1 995 mail.example.test."},
		{"SRV _pop3._tcp.example.test.", "30 1 110 mail.example.test."},
		{"CNAME autoconfig.example.test.", "mail.example.test."},
		{"CNAME autodiscover.example.test.", "mail.example.test."},
		{"CNAME mta-sts.example.test.", "mail.example.test."},
		{"CAA example.test.", `0 issue "letsencrypt.org"`},
	}
	for _, c := range cases {
		r, ok := byName[c.key]
		if !ok {
			t.Errorf("no record %s", c.key)
			continue
		}
		if r.Value != c.value {
			t.Errorf("%s = %s, want %s", c.key, r.Value, c.value)
		}
	}
	// The SPF record is the one TXT record at the domain itself.
	if r := byName["TXT example.test."]; r.Value != `"v=spf1 mx -all"` {
		t.Errorf("SPF = %s", r.Value)
	}
	// A 2048-bit RSA key does not fit one TXT string: it is split, and joins back unchanged.
	rsa := byName["TXT r20260101._domainkey.example.test."]
	rr, _ := mdns.NewRR(rsa.Zone())
	if txt := rr.(*mdns.TXT).Txt; len(txt) < 2 || strings.Join(txt, "") != in.DKIM[0].TXT {
		t.Errorf("DKIM TXT strings %q do not join to the key", txt)
	}
	// MTA-STS id: 1–32 alphanumerics (RFC 8461 §3.1), and the policy names our MX.
	sts := byName["TXT _mta-sts.example.test."]
	if !regexp.MustCompile(`^"v=STSv1; id=[a-zA-Z0-9]{1,32}"$`).MatchString(sts.Value) {
		t.Errorf("MTA-STS TXT %s", sts.Value)
	}
	policy := MTASTSPolicy("mail.example.test", "enforce")
	if policy != "version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 604800\r\n" {
		t.Errorf("policy %q", policy)
	}
	if MTASTSID(policy) == MTASTSID(MTASTSPolicy("mail.example.test", "testing")) {
		t.Error("policy id does not change with the policy")
	}
}

func TestZoneFile(t *testing.T) {
	in := testInput()
	z := ZoneFile("records", append(ServerRecords(in), DomainRecords(in)...))
	p := mdns.NewZoneParser(strings.NewReader(z), "", "")
	n := 0
	for _, ok := p.Next(); ok; _, ok = p.Next() {
		n++
	}
	if err := p.Err(); err != nil {
		t.Fatalf("zone file does not parse: %v\n%s", err, z)
	}
	if n != 21 {
		t.Errorf("zone file has %d records, want 21", n)
	}
}
