package admin

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"mailstead/dns"
)

func (e *env) records() []Record {
	e.t.Helper()
	recs, _, err := RecordsFor(context.Background(), e.st, "example.test", []net.IP{e.ip}, testPorts, e.adm.cfg.DKIMKeys)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func statuses(cs []Checked) map[string]string {
	m := map[string]string{}
	for _, c := range cs {
		m[c.Type+" "+c.Name] = c.Status
	}
	return m
}

// The live checks against a fake zone: nothing published → missing; everything published → ok;
// wrong values → wrong, with what was found.
func TestChecksAgainstZone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := dns.New(e.zone.Addr())
	recs := e.records()

	for k, st := range statuses(checkAll(ctx, r, []net.IP{e.ip}, recs)) {
		if st != StatusMissing {
			t.Errorf("empty zone: %s is %s, want %s", k, st, StatusMissing)
		}
	}

	for _, rec := range recs {
		e.zone.Add(rec.Zone())
	}
	for _, c := range checkAll(ctx, r, []net.IP{e.ip}, recs) {
		if c.Status != StatusOK {
			t.Errorf("published: %s %s is %s (%s)", c.Type, c.Name, c.Status, c.Found)
		}
	}

	// Now break some of them.
	e.zone.Remove("example.test.", "MX")
	e.zone.Add("example.test. 300 IN MX 10 mx.elsewhere.test.")
	e.zone.Remove("example.test.", "TXT")
	e.zone.Add(`example.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 -all"`, `example.test. 300 IN TXT "google-site-verification=x"`)
	e.zone.Remove("_imaps._tcp.example.test.", "SRV")
	e.zone.Add("_imaps._tcp.example.test. 300 IN SRV 0 1 993 mail.example.test.")
	e.zone.Remove("r1._domainkey.example.test.", "TXT")
	e.zone.AddTXT("r1._domainkey.example.test.", "v=DKIM1; k=rsa; p=OLDKEY")
	e.zone.Remove("_dmarc.example.test.", "TXT")
	e.zone.Add(`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=none"`, `_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject"`)
	e.zone.Remove("mail.example.test.", "A")
	e.zone.Add("mail.example.test. 300 IN A 127.0.0.99")
	e.zone.Remove("example.test.", "CAA")
	e.zone.Add(`example.test. 300 IN CAA 0 issue "digicert.com"`)
	e.zone.Remove("autoconfig.example.test.", "")
	e.zone.Add("autoconfig.example.test. 300 IN A 127.0.0.7") // an address here does as well as a CNAME

	found := map[string]Checked{}
	for _, c := range checkAll(ctx, r, []net.IP{e.ip}, recs) {
		found[c.Type+" "+c.Name] = c
	}
	cases := []struct{ key, status, found string }{
		{"MX example.test.", StatusWrong, "10 mx.elsewhere.test"},
		{"TXT example.test.", StatusWrong, "v=spf1 ip4:198.51.100.1 -all"},
		{"SRV _imaps._tcp.example.test.", StatusWrong, "0 1 993 mail.example.test"},
		{"TXT r1._domainkey.example.test.", StatusWrong, "p=OLDKEY"},
		{"TXT e1._domainkey.example.test.", StatusOK, ""},
		{"TXT _dmarc.example.test.", StatusWrong, "more than one record"},
		{"A mail.example.test.", StatusWrong, "127.0.0.99"},
		{"PTR 7.0.0.127.in-addr.arpa.", StatusWrong, "resolves to 127.0.0.99"},
		{"CNAME autoconfig.example.test.", StatusOK, ""},
		{"CNAME autodiscover.example.test.", StatusOK, ""},
		{"CAA example.test.", StatusWrong, "digicert.com"},
	}
	for _, c := range cases {
		got, ok := found[c.key]
		if !ok {
			t.Errorf("no check for %s", c.key)
			continue
		}
		if got.Status != c.status || !strings.Contains(got.Found, c.found) {
			t.Errorf("%s: %s (found %q), want %s with %q", c.key, got.Status, got.Found, c.status, c.found)
		}
	}

	// A failing name server is an error to retry, not "missing".
	e.zone.SetFailure("_smtp._tls.example.test.", 2)
	for _, c := range checkAll(ctx, r, []net.IP{e.ip}, recs) {
		if c.Name == "_smtp._tls.example.test." && c.Status != StatusError {
			t.Errorf("SERVFAIL gave %s", c.Status)
		}
	}
}

func TestHostnameCheck(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := dns.New(e.zone.Addr())
	ours := []net.IP{e.ip}
	if c := hostnameCheck(ctx, r, "mail.example.test", ours); c.Status != StatusMissing {
		t.Errorf("unpublished hostname: %+v", c)
	}
	e.zone.Add("mail.example.test. 300 IN A 127.0.0.7")
	if c := hostnameCheck(ctx, r, "mail.example.test", ours); c.Status != StatusOK {
		t.Errorf("published hostname: %+v", c)
	}
	e.zone.Add("mail.example.test. 300 IN A 127.0.0.8")
	if c := hostnameCheck(ctx, r, "mail.example.test", ours); c.Status != StatusWrong || !strings.Contains(c.Detail, "127.0.0.8") {
		t.Errorf("hostname also elsewhere: %+v", c)
	}
}

func TestPort25Probe(t *testing.T) {
	r := dns.New(newEnv(t).zone.Addr())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "220 probe.test ESMTP\r\n")
			buf := make([]byte, 64)
			c.Read(buf)
			c.Close()
		}
	}()
	ctx := context.Background()
	if c := port25Probe(ctx, r, l.Addr().String()); c.Status != StatusOK {
		t.Errorf("open port: %+v", c)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if c := port25Probe(ctx, r, addr); c.Status != StatusWrong || c.FixURL == "" {
		t.Errorf("closed port: %+v", c)
	}
	// Names go through our resolver (here: the empty fake zone), never the system's.
	if c := port25Probe(ctx, r, "smtp.nowhere.test:25"); c.Status != StatusError {
		t.Errorf("unresolvable probe target: %+v", c)
	}
}

// TestWeakerRecordsAreNamed: a published record that passes but protects less than the one
// suggested (DMARC p=none, SPF +all, ~all) is "weaker", with what was found and why.
func TestWeakerRecordsAreNamed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := dns.New(e.zone.Addr())
	recs := e.records()
	tests := []struct {
		name, txt, status, why string
	}{
		{"_dmarc.example.test.", "v=DMARC1; p=none", StatusWeaker, "p=none"},
		{"_dmarc.example.test.", "v=DMARC1; p=reject", StatusOK, ""},
		{"example.test.", "v=spf1 mx +all", StatusWeaker, "+all"},
		{"example.test.", "v=spf1 mx ~all", StatusWeaker, "~all"},
		{"example.test.", "v=spf1 mx -all", StatusOK, ""},
	}
	for _, tt := range tests {
		e.zone.Remove(tt.name, "TXT")
		e.zone.AddTXT(tt.name, tt.txt)
		for _, c := range checkAll(ctx, r, []net.IP{e.ip}, recs) {
			if c.Type != "TXT" || c.Name != tt.name {
				continue
			}
			if c.Status != tt.status || !strings.Contains(c.Weaker, tt.why) || (tt.status == StatusWeaker && c.Found != tt.txt) {
				t.Errorf("%s %q: %s found %q why %q; want %s with %q", tt.name, tt.txt, c.Status, c.Found, c.Weaker, tt.status, tt.why)
			}
		}
	}
}

// TestFormValue: what "Copy value" gives is what a provider's form wants: a TXT record as one
// unquoted string (a 2048-bit DKIM key is over 255 bytes, so two chunks in zone syntax), an MX
// host with its priority apart.
func TestFormValue(t *testing.T) {
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 392)
	tests := []struct {
		rec      Record
		value    string
		priority string
	}{
		{Record{Type: "TXT", Value: quoteTXT(long)}, long, ""},
		{Record{Type: "TXT", Value: `"v=spf1 mx -all"`}, "v=spf1 mx -all", ""},
		{Record{Type: "TXT", Value: `"say \"hi\""`}, `say "hi"`, ""},
		{Record{Type: "MX", Value: "10 mail.example.org."}, "mail.example.org", "10"},
		{Record{Type: "CNAME", Value: "mail.example.org."}, "mail.example.org.", ""},
	}
	for _, tt := range tests {
		if got := tt.rec.FormValue(); got != tt.value || tt.rec.Priority() != tt.priority {
			t.Errorf("%s %q: value %q priority %q; want %q %q", tt.rec.Type, tt.rec.Value, got, tt.rec.Priority(), tt.value, tt.priority)
		}
	}
	if strings.Count(quoteTXT(long), `"`) != 4 {
		t.Fatal("the long TXT value is not in two chunks; the test proves nothing")
	}
}
