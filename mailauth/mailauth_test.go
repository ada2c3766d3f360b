package mailauth_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"mailstead/dns"
	"mailstead/dns/dnstest"
	"mailstead/mailauth"
)

// The world of these tests: we are mx.a.test, hosting a.test. b.test is a
// well-configured remote domain sending from 192.0.2.10 (mail.b.test).
const (
	ourHost  = "mx.a.test"
	senderIP = "192.0.2.10"
	otherIP  = "198.51.100.7"
)

type testKeys struct {
	rsa, ed       mailauth.SigningKey
	rsaTXT, edTXT string
}

var (
	keysOnce sync.Once
	keys     testKeys
)

// signingKeys makes one RSA and one Ed25519 key per test binary: RSA
// generation is slow.
func signingKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		rsaPEM, rsaTXT, err := mailauth.GenerateRSAKey()
		if err != nil {
			t.Fatal(err)
		}
		edPEM, edTXT, err := mailauth.GenerateEd25519Key()
		if err != nil {
			t.Fatal(err)
		}
		rsaKey, err := mailauth.ParsePrivateKey(rsaPEM)
		if err != nil {
			t.Fatal(err)
		}
		edKey, err := mailauth.ParsePrivateKey(edPEM)
		if err != nil {
			t.Fatal(err)
		}
		keys = testKeys{
			rsa:    mailauth.SigningKey{Selector: mailauth.SelectorRSA, Signer: rsaKey},
			ed:     mailauth.SigningKey{Selector: mailauth.SelectorEd25519, Signer: edKey},
			rsaTXT: rsaTXT, edTXT: edTXT,
		}
	})
	if keys.rsa.Signer == nil {
		t.Fatal("key generation failed earlier")
	}
	return keys
}

type env struct {
	zone    *dnstest.Zone
	checker *mailauth.Checker
	keys    testKeys
}

// newEnv starts a zone holding b.test's records and a checker for mx.a.test.
func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	z := dnstest.NewZone(t)
	k := signingKeys(t)
	z.Add(
		"b.test. 300 IN MX 10 mail.b.test.",
		`b.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		"mail.b.test. 300 IN A "+senderIP,
		`mail.b.test. 300 IN TXT "v=spf1 a -all"`,
		`_dmarc.b.test. 300 IN TXT "v=DMARC1; p=reject"`,
		// other.test passes SPF and DKIM for itself only.
		"other.test. 300 IN MX 10 mail.other.test.",
		`other.test. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 -all"`,
		"mail.other.test. 300 IN A "+otherIP,
		"mx.a.test. 300 IN A 127.0.0.1",
	)
	z.AddPTR(senderIP, "mail.b.test")
	z.AddPTR(otherIP, "mail.other.test")
	for _, d := range []string{"b.test", "other.test", "a.test"} {
		z.AddTXT(mailauth.DKIMRecordName(mailauth.SelectorRSA, d), k.rsaTXT)
		z.AddTXT(mailauth.DKIMRecordName(mailauth.SelectorEd25519, d), k.edTXT)
	}
	r := dns.New(z.Addr())
	r.Timeout = time.Second
	r.Attempts = 1
	return &env{
		zone: z,
		keys: k,
		checker: &mailauth.Checker{
			Resolver: r,
			Hostname: ourHost,
			Policy: mailauth.Policy{
				IsLocalDomain: func(d string) bool { return d == "a.test" },
			},
		},
	}
}

// message builds a CRLF message from header lines and a body.
func message(from, subject, body string, extra ...string) []byte {
	h := []string{
		"From: Sender <" + from + ">",
		"To: rcpt@a.test",
		"Subject: " + subject,
		"Date: Sun, 29 Nov 2026 09:00:00 +0000",
		"Message-ID: <1@" + domainOf(from) + ">",
	}
	h = append(h, extra...)
	return []byte(strings.Join(h, "\r\n") + "\r\n\r\n" + body)
}

// addHeader inserts a header line after the signatures and From, where a forwarder might.
func addHeader(msg []byte, line string) []byte {
	return []byte(strings.Replace(string(msg), "\r\nTo: ", "\r\n"+line+"\r\nTo: ", 1))
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

func (e *env) sign(t *testing.T, msg []byte, domain string, k ...mailauth.SigningKey) []byte {
	t.Helper()
	if len(k) == 0 {
		k = []mailauth.SigningKey{e.keys.rsa, e.keys.ed}
	}
	out, err := mailauth.Sign(msg, domain, k...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) check(t *testing.T, ip, helo, mailFrom string, msg []byte) *mailauth.Result {
	t.Helper()
	res, err := e.checker.Check(context.Background(), mailauth.Input{
		IP: net.ParseIP(ip), Helo: helo, MailFrom: mailFrom, Rcpts: []string{"rcpt@a.test"}, Message: bytes.NewReader(msg),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestSignedMailPasses is the normal case: b.test's server sends signed
// mail: everything passes, the header says so and parses.
func TestSignedMailPasses(t *testing.T) {
	e := newEnv(t)
	msg := e.sign(t, message("alice@b.test", "hello", "Hi there.\r\n"), "b.test")
	res := e.check(t, senderIP, "mail.b.test", "alice@b.test", msg)

	if res.SPF.Status != mailauth.StatusPass || res.HeloSPF.Status != mailauth.StatusPass {
		t.Errorf("spf = %s, helo spf = %s", res.SPF.Status, res.HeloSPF.Status)
	}
	if len(res.DKIM) != 2 || res.DKIM[0].Status != mailauth.StatusPass || res.DKIM[1].Status != mailauth.StatusPass {
		t.Errorf("dkim = %+v", res.DKIM)
	}
	if res.DKIM[0].Algorithm != "rsa-sha256" || res.DKIM[1].Algorithm != "ed25519-sha256" {
		t.Errorf("dkim algorithms %q %q", res.DKIM[0].Algorithm, res.DKIM[1].Algorithm)
	}
	if res.DMARC.Status != mailauth.StatusPass || !res.DMARC.SPFAligned || !res.DMARC.DKIMAligned {
		t.Errorf("dmarc = %+v", res.DMARC)
	}
	if res.IPRev.Status != mailauth.StatusPass {
		t.Errorf("iprev = %+v", res.IPRev)
	}
	if res.Action.Verdict != mailauth.Accept {
		t.Errorf("action = %+v", res.Action)
	}

	h := res.Header
	for _, want := range []string{
		"Authentication-Results: mx.a.test;\r\n\t",
		"iprev=pass policy.iprev=192.0.2.10 (mail.b.test)",
		"spf=pass smtp.mailfrom=alice@b.test",
		"spf=pass smtp.helo=mail.b.test",
		"dkim=pass header.d=b.test header.s=ms-rsa header.a=rsa-sha256 header.b=",
		"dkim=pass header.d=b.test header.s=ms-ed header.a=ed25519-sha256",
		"dmarc=pass (p=reject) header.from=b.test",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("header lacks %q:\n%s", want, h)
		}
	}
	// The header must be well-formed for other RFC 8601 parsers.
	value := strings.TrimPrefix(strings.ReplaceAll(strings.TrimSuffix(h, "\r\n"), "\r\n\t", " "), "Authentication-Results: ")
	id, results, err := authres.Parse(value)
	if err != nil || id != ourHost || len(results) != 6 {
		t.Errorf("authres.Parse = %q, %d results, %v", id, len(results), err)
	}

	stamped := e.checker.Stamp(msg, res)
	if !strings.HasPrefix(string(stamped), h) || !strings.HasSuffix(string(stamped), string(msg)) {
		t.Error("Stamp did not prepend the header to the message")
	}
}

func TestSPF(t *testing.T) {
	e := newEnv(t)
	z := e.zone
	z.Add(
		`fail.test. 300 IN TXT "v=spf1 ip4:203.0.113.1 -all"`,
		`softfail.test. 300 IN TXT "v=spf1 ~all"`,
		`neutral.test. 300 IN TXT "v=spf1 ?all"`,
		"none.test. 300 IN A 192.0.2.1",
		`perm.test. 300 IN TXT "v=spf1 ip4:192.0.2.300 -all"`,
		`twice.test. 300 IN TXT "v=spf1 -all"`,
		`twice.test. 300 IN TXT "v=spf1 +all"`,
		`include.test. 300 IN TXT "v=spf1 include:_spf.provider.test -all"`,
		`_spf.provider.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/28 -all"`,
		`include-missing.test. 300 IN TXT "v=spf1 include:_spf.nowhere.test -all"`,
		`include-temp.test. 300 IN TXT "v=spf1 include:broken.test -all"`,
		`redirect.test. 300 IN TXT "v=spf1 redirect=_spf.provider.test"`,
		`redirect-fail.test. 300 IN TXT "v=spf1 redirect=fail.test"`,
		// Macros (RFC 7208 section 7): %{i} the IP, %{l} the local part.
		`macro-ip.test. 300 IN TXT "v=spf1 exists:%{i}._ip.macro-ip.test -all"`,
		"192.0.2.10._ip.macro-ip.test. 300 IN A 127.0.0.2",
		`macro-user.test. 300 IN TXT "v=spf1 exists:%{l}._u.%{d} -all"`,
		"alice._u.macro-user.test. 300 IN A 127.0.0.2",
	)
	z.SetFailure("temp.test", 2)
	z.SetFailure("broken.test", 2)

	tests := []struct {
		mailFrom string
		want     mailauth.Status
	}{
		{"alice@b.test", mailauth.StatusPass},
		{"alice@fail.test", mailauth.StatusFail},
		{"alice@softfail.test", mailauth.StatusSoftFail},
		{"alice@neutral.test", mailauth.StatusNeutral},
		{"alice@none.test", mailauth.StatusNone},
		{"alice@nowhere.test", mailauth.StatusNone},
		{"alice@temp.test", mailauth.StatusTempError},
		{"alice@perm.test", mailauth.StatusPermError},
		{"alice@twice.test", mailauth.StatusPermError},
		{"alice@include.test", mailauth.StatusPass},
		{"alice@include-missing.test", mailauth.StatusPermError},
		{"alice@include-temp.test", mailauth.StatusTempError},
		{"alice@redirect.test", mailauth.StatusPass},
		{"alice@redirect-fail.test", mailauth.StatusFail},
		{"alice@macro-ip.test", mailauth.StatusPass},
		{"alice@macro-user.test", mailauth.StatusPass},
		{"bob@macro-user.test", mailauth.StatusFail},
	}
	for _, tc := range tests {
		t.Run(tc.mailFrom, func(t *testing.T) {
			res := e.check(t, senderIP, "mail.b.test", tc.mailFrom, message(tc.mailFrom, "spf", "x\r\n"))
			if res.SPF.Status != tc.want {
				t.Errorf("spf = %s (%s), want %s", res.SPF.Status, res.SPF.Reason, tc.want)
			}
			if !strings.Contains(res.Header, "spf="+string(tc.want)) {
				t.Errorf("header lacks spf=%s:\n%s", tc.want, res.Header)
			}
		})
	}

	t.Run("null sender uses HELO", func(t *testing.T) {
		res := e.check(t, senderIP, "mail.b.test", "", message("postmaster@b.test", "bounce", "x\r\n"))
		if res.SPF.Status != mailauth.StatusPass || res.SPF.Domain != "mail.b.test" || res.SPF.Sender != "" {
			t.Errorf("spf = %+v", res.SPF)
		}
		if strings.Contains(res.Header, "smtp.mailfrom") || !strings.Contains(res.Header, "spf=pass smtp.helo=mail.b.test") {
			t.Errorf("header:\n%s", res.Header)
		}
	})
	t.Run("HELO literal is not checked", func(t *testing.T) {
		res := e.check(t, senderIP, "[192.0.2.10]", "alice@b.test", message("alice@b.test", "x", "x\r\n"))
		if res.HeloSPF.Status != mailauth.StatusNone || res.SPF.Status != mailauth.StatusPass {
			t.Errorf("helo %+v, mailfrom %+v", res.HeloSPF, res.SPF)
		}
	})
}

func TestDKIM(t *testing.T) {
	e := newEnv(t)
	z := e.zone
	k := e.keys
	z.AddTXT("revoked._domainkey.b.test", "v=DKIM1; k=rsa; p=")
	z.SetFailure("ms-rsa._domainkey.temp.test", 2)

	base := message("alice@b.test", "dkim", "Line one.\r\nLine two.\r\n")
	signed := e.sign(t, base, "b.test", k.rsa)
	edSigned := e.sign(t, base, "b.test", k.ed)

	tests := []struct {
		name string
		msg  []byte
		want mailauth.Status
	}{
		{"valid rsa", signed, mailauth.StatusPass},
		{"valid ed25519", edSigned, mailauth.StatusPass},
		{"relaxed body survives trailing space", []byte(strings.Replace(string(signed), "Line one.", "Line one.  ", 1)), mailauth.StatusPass},
		{"tampered body", []byte(strings.Replace(string(signed), "Line two.", "Line 2.", 1)), mailauth.StatusFail},
		{"tampered header", []byte(strings.Replace(string(signed), "Subject: dkim", "Subject: DKIM!", 1)), mailauth.StatusFail},
		{"added From (over-signed)", []byte(strings.Replace(string(signed), "To: ", "From: evil@evil.test\r\nTo: ", 1)), mailauth.StatusFail},
		// RFC 6376 §8.15: fields absent when signed are over-signed too, so adding one fails.
		{"added Reply-To (absent, over-signed)", addHeader(signed, "Reply-To: evil@evil.test"), mailauth.StatusFail},
		{"added Cc (absent, over-signed)", addHeader(signed, "Cc: evil@evil.test"), mailauth.StatusFail},
		{"added Content-Type (absent, over-signed)", addHeader(signed, "Content-Type: text/html"), mailauth.StatusFail},
		{"added Sender (absent, over-signed)", addHeader(signed, "Sender: evil@evil.test"), mailauth.StatusFail},
		{"added In-Reply-To (absent, over-signed)", addHeader(signed, "In-Reply-To: <x@evil.test>"), mailauth.StatusFail},
		{"added Received (not signed)", addHeader(signed, "Received: from x by y; Sun, 29 Nov 2026 09:00:00 +0000"), mailauth.StatusPass},
		{"missing key", e.sign(t, base, "nokey.test", k.rsa), mailauth.StatusPermError},
		{"revoked key", e.sign(t, base, "b.test", mailauth.SigningKey{Selector: "revoked", Signer: k.rsa.Signer}), mailauth.StatusPermError},
		{"key lookup SERVFAIL", e.sign(t, base, "temp.test", k.rsa), mailauth.StatusTempError},
		{"malformed signature", append([]byte("DKIM-Signature: v=1; d=b.test; s=ms-rsa; a=rsa-sha256; d=twice\r\n"), base...), mailauth.StatusPermError},
		{"wrong key type", e.sign(t, base, "b.test", mailauth.SigningKey{Selector: mailauth.SelectorEd25519, Signer: k.rsa.Signer}), mailauth.StatusPermError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.check(t, senderIP, "mail.b.test", "alice@b.test", tc.msg)
			if len(res.DKIM) != 1 {
				t.Fatalf("%d dkim results, want 1", len(res.DKIM))
			}
			if got := res.DKIM[0]; got.Status != tc.want {
				t.Errorf("dkim = %s (%s), want %s", got.Status, got.Reason, tc.want)
			}
			if !strings.Contains(res.Header, "dkim="+string(tc.want)) {
				t.Errorf("header lacks dkim=%s:\n%s", tc.want, res.Header)
			}
		})
	}

	t.Run("unsigned", func(t *testing.T) {
		res := e.check(t, senderIP, "mail.b.test", "alice@b.test", base)
		if len(res.DKIM) != 0 || !strings.Contains(res.Header, "dkim=none") {
			t.Errorf("dkim %+v, header:\n%s", res.DKIM, res.Header)
		}
	})
	t.Run("every signature reported", func(t *testing.T) {
		msg := e.sign(t, e.sign(t, base, "other.test", k.ed), "b.test", k.rsa)
		res := e.check(t, senderIP, "mail.b.test", "alice@b.test", msg)
		if len(res.DKIM) != 2 || res.DKIM[0].Domain != "b.test" || res.DKIM[1].Domain != "other.test" ||
			res.DKIM[0].Status != mailauth.StatusPass || res.DKIM[1].Status != mailauth.StatusPass {
			t.Errorf("dkim = %+v", res.DKIM)
		}
	})
}

func TestIPRev(t *testing.T) {
	e := newEnv(t)
	e.zone.AddPTR("192.0.2.20", "liar.test")
	e.zone.Add("liar.test. 300 IN A 192.0.2.99")
	e.zone.AddPTR("2001:db8::10", "mail6.b.test")
	e.zone.Add("mail6.b.test. 300 IN AAAA 2001:db8::10")
	arpa := "30.2.0.192.in-addr.arpa"
	e.zone.SetFailure(arpa, 2)
	tests := []struct {
		ip   string
		want mailauth.Status
	}{
		{senderIP, mailauth.StatusPass},
		{"2001:db8::10", mailauth.StatusPass},
		{"192.0.2.20", mailauth.StatusFail}, // PTR does not resolve back
		{"192.0.2.21", mailauth.StatusFail}, // no PTR
		{"192.0.2.30", mailauth.StatusTempError},
	}
	for _, tc := range tests {
		res := e.check(t, tc.ip, "mail.b.test", "alice@b.test", message("alice@b.test", "x", "x\r\n"))
		if res.IPRev.Status != tc.want {
			t.Errorf("iprev %s = %s (%s), want %s", tc.ip, res.IPRev.Status, res.IPRev.Reason, tc.want)
		}
	}
}

func TestAuthResultsPvalues(t *testing.T) {
	e := newEnv(t)
	res := e.check(t, "2001:db8::1", "mail.b.test", `"odd local"@b.test`, message("alice@b.test", "x", "x\r\n"))
	for _, want := range []string{`policy.iprev="2001:db8::1"`, `smtp.mailfrom="\"odd local\"@b.test"`} {
		if !strings.Contains(res.Header, want) {
			t.Errorf("header lacks %s:\n%s", want, res.Header)
		}
	}
	value := strings.TrimPrefix(strings.ReplaceAll(strings.TrimSuffix(res.Header, "\r\n"), "\r\n\t", " "), "Authentication-Results: ")
	if _, _, err := authres.Parse(value); err != nil {
		t.Errorf("authres.Parse: %v\n%s", err, res.Header)
	}
}
