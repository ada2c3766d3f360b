package mailauth_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"mailstead/mailauth"
)

// TestDMARCAndPolicy: a message arrives; DMARC and the policy decide where
// it goes.
func TestDMARCAndPolicy(t *testing.T) {
	e := newEnv(t)
	z := e.zone
	k := e.keys
	z.Add(
		`_dmarc.strict.test. 300 IN TXT "v=DMARC1; p=reject; aspf=s; adkim=s"`,
		`strict.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`bounce.strict.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.quar.test. 300 IN TXT "v=DMARC1; p=quarantine"`,
		`_dmarc.pct.test. 300 IN TXT "v=DMARC1; p=reject; pct=0"`,
		`_dmarc.pctq.test. 300 IN TXT "v=DMARC1; p=quarantine; pct=0"`,
		`_dmarc.org.test. 300 IN TXT "v=DMARC1; p=none; sp=reject"`,
		`_dmarc.orgp.test. 300 IN TXT "v=DMARC1; p=reject; sp=none"`,
		`_dmarc.none.test. 300 IN TXT "v=DMARC1; p=none"`,
		`_dmarc.bad.test. 300 IN TXT "v=DMARC1; p=bogus"`,
		"nodmarc.test. 300 IN A 192.0.2.1",
		`softfail.test. 300 IN TXT "v=spf1 ~all"`,
		`_dmarc.a.test. 300 IN TXT "v=DMARC1; p=none"`,
		`a.test. 300 IN TXT "v=spf1 mx -all"`,
		"a.test. 300 IN MX 10 mx.a.test.",
	)
	z.SetFailure("_dmarc.tempdmarc.test", 2)
	z.SetFailure("tempspf.test", 2)
	for _, d := range []string{"strict.test", "quar.test", "pct.test", "pctq.test", "org.test", "orgp.test", "none.test", "nodmarc.test", "tempdmarc.test"} {
		z.AddTXT(mailauth.DKIMRecordName(mailauth.SelectorRSA, d), k.rsaTXT)
	}

	body := "Pay this invoice.\r\n"
	tests := []struct {
		name     string
		ip       string
		mailFrom string
		from     string
		signWith string // DKIM d=, "" for unsigned
		policy   mailauth.Policy
		dmarc    mailauth.Status
		verdict  mailauth.Verdict
		code     int
	}{
		{name: "aligned SPF only, relaxed subdomain", ip: senderIP, mailFrom: "x@mail.b.test", from: "alice@b.test",
			dmarc: mailauth.StatusPass, verdict: mailauth.Accept},
		{name: "aligned DKIM only", ip: otherIP, mailFrom: "x@other.test", from: "alice@b.test", signWith: "b.test",
			dmarc: mailauth.StatusPass, verdict: mailauth.Accept},
		{name: "unaligned: other domain's SPF and DKIM, p=reject", ip: otherIP, mailFrom: "x@other.test", from: "ceo@b.test", signWith: "other.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Reject, code: 550},
		{name: "p=reject to junk by setting", ip: otherIP, mailFrom: "x@other.test", from: "ceo@b.test",
			policy: mailauth.Policy{DMARCRejectToJunk: true}, dmarc: mailauth.StatusFail, verdict: mailauth.Junk},
		{name: "strict SPF alignment fails for subdomain", ip: senderIP, mailFrom: "x@bounce.strict.test", from: "a@strict.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Reject, code: 550},
		{name: "strict alignment, exact domain", ip: senderIP, mailFrom: "x@strict.test", from: "a@strict.test",
			dmarc: mailauth.StatusPass, verdict: mailauth.Accept},
		{name: "p=quarantine", ip: otherIP, mailFrom: "x@other.test", from: "a@quar.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Junk},
		{name: "pct=0 turns reject into quarantine", ip: otherIP, mailFrom: "x@other.test", from: "a@pct.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Junk},
		{name: "pct=0 turns quarantine into none", ip: otherIP, mailFrom: "x@other.test", from: "a@pctq.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Accept},
		{name: "subdomain policy sp=reject", ip: otherIP, mailFrom: "x@other.test", from: "a@sub.org.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Reject, code: 550},
		{name: "subdomain policy sp=none", ip: otherIP, mailFrom: "x@other.test", from: "a@sub.orgp.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Accept},
		{name: "organisational domain p= applies to itself", ip: otherIP, mailFrom: "x@other.test", from: "a@org.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Accept},
		{name: "p=none", ip: otherIP, mailFrom: "x@other.test", from: "a@none.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Accept},
		{name: "no DMARC record", ip: otherIP, mailFrom: "x@other.test", from: "a@nodmarc.test",
			dmarc: mailauth.StatusNone, verdict: mailauth.Accept},
		{name: "invalid DMARC record", ip: otherIP, mailFrom: "x@other.test", from: "a@bad.test",
			dmarc: mailauth.StatusPermError, verdict: mailauth.Accept},
		{name: "DMARC lookup SERVFAIL", ip: otherIP, mailFrom: "x@other.test", from: "a@tempdmarc.test",
			dmarc: mailauth.StatusTempError, verdict: mailauth.TempFail, code: 451},
		{name: "DMARC lookup SERVFAIL but aligned DKIM", ip: otherIP, mailFrom: "x@other.test", from: "a@tempdmarc.test", signWith: "tempdmarc.test",
			dmarc: mailauth.StatusPass, verdict: mailauth.Accept},
		{name: "SPF fail without DKIM", ip: otherIP, mailFrom: "x@b.test", from: "a@nodmarc.test",
			dmarc: mailauth.StatusNone, verdict: mailauth.Junk},
		{name: "SPF fail with DKIM pass", ip: otherIP, mailFrom: "x@b.test", from: "a@nodmarc.test", signWith: "nodmarc.test",
			dmarc: mailauth.StatusNone, verdict: mailauth.Accept},
		{name: "SPF softfail is not junk", ip: otherIP, mailFrom: "x@softfail.test", from: "a@nodmarc.test",
			dmarc: mailauth.StatusNone, verdict: mailauth.Accept},
		{name: "SPF temperror without DKIM", ip: otherIP, mailFrom: "x@tempspf.test", from: "a@nodmarc.test",
			dmarc: mailauth.StatusNone, verdict: mailauth.TempFail, code: 451},
		{name: "own From domain, unauthenticated", ip: otherIP, mailFrom: "x@other.test", from: "boss@a.test",
			dmarc: mailauth.StatusFail, verdict: mailauth.Reject, code: 550},
		{name: "own From domain, DKIM-signed by us", ip: otherIP, mailFrom: "x@other.test", from: "boss@a.test", signWith: "a.test",
			dmarc: mailauth.StatusPass, verdict: mailauth.Accept},
		{name: "own MAIL FROM domain, unauthenticated", ip: otherIP, mailFrom: "boss@a.test", from: "a@other.test",
			dmarc: mailauth.StatusNone, verdict: mailauth.Reject, code: 550},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.checker.Policy = tc.policy
			if e.checker.Policy.IsLocalDomain == nil {
				e.checker.Policy.IsLocalDomain = func(d string) bool { return d == "a.test" }
			}
			msg := message(tc.from, "policy", body)
			if tc.signWith != "" {
				msg = e.sign(t, msg, tc.signWith, k.rsa)
			}
			helo := "mail.other.test"
			if tc.ip == senderIP {
				helo = "mail.b.test"
			}
			res := e.check(t, tc.ip, helo, tc.mailFrom, msg)
			if res.DMARC.Status != tc.dmarc {
				t.Errorf("dmarc = %s (%s), want %s; %+v", res.DMARC.Status, res.DMARC.Reason, tc.dmarc, res.DMARC)
			}
			if res.Action.Verdict != tc.verdict || res.Action.Reply.Code != tc.code {
				t.Errorf("action = %+v, want %s %d", res.Action, tc.verdict, tc.code)
			}
			if tc.verdict == mailauth.Reject && res.Action.Reply.Enhanced != [3]int{5, 7, 1} {
				t.Errorf("reject enhanced code = %v, want 5.7.1", res.Action.Reply.Enhanced)
			}
			if tc.verdict == mailauth.TempFail && res.Action.Reply.Enhanced[0] != 4 {
				t.Errorf("tempfail enhanced code = %v", res.Action.Reply.Enhanced)
			}
		})
	}
}

func TestNoSingleFrom(t *testing.T) {
	e := newEnv(t)
	for name, msg := range map[string]string{
		"no From":              "To: a@a.test\r\nSubject: x\r\n\r\nbody\r\n",
		"two From fields":      "From: a@b.test\r\nFrom: b@other.test\r\nSubject: x\r\n\r\nbody\r\n",
		"two From domains":     "From: a@b.test, b@other.test\r\nSubject: x\r\n\r\nbody\r\n",
		"garbage in From":      "From: <<>>\r\nSubject: x\r\n\r\nbody\r\n",
		"header only, no body": "From: a@b.test, b@other.test",
	} {
		// RFC 5322 §3.6: refused by default, naming the rule.
		res := e.check(t, senderIP, "mail.b.test", "alice@b.test", []byte(msg))
		if res.DMARC.Status != mailauth.StatusPermError || res.Action.Verdict != mailauth.Reject ||
			res.Action.Reply.Code != 550 || res.Action.Reply.Enhanced != [3]int{5, 7, 1} ||
			!strings.Contains(res.Action.Reply.Text, "RFC 5322 section 3.6") {
			t.Errorf("%s: dmarc %s, action %+v", name, res.DMARC.Status, res.Action)
		}
		// The setting sends it to Junk instead.
		e.checker.Policy.NoFromToJunk = true
		res = e.check(t, senderIP, "mail.b.test", "alice@b.test", []byte(msg))
		e.checker.Policy.NoFromToJunk = false
		if res.Action.Verdict != mailauth.Junk {
			t.Errorf("%s with NoFromToJunk: action %+v", name, res.Action)
		}
	}
	// An unparseable From still yields the domain a reader would see.
	res := e.check(t, otherIP, "mail.other.test", "x@other.test", []byte("From: \"CEO\" (x <ceo@b.test>\r\n\r\nbody\r\n"))
	if res.DMARC.FromDomain != "b.test" || res.Action.Verdict != mailauth.Reject {
		t.Errorf("lenient From: dmarc %+v, action %+v", res.DMARC, res.Action)
	}
}

func TestCheckSender(t *testing.T) {
	e := newEnv(t)
	z := e.zone
	z.Add(
		"nullmx.test. 300 IN MX 0 .",
		"aonly.test. 300 IN A 192.0.2.1",
		"v6only.test. 300 IN AAAA 2001:db8::1",
		"txtonly.test. 300 IN TXT \"hello\"",
	)
	z.SetFailure("servfail.test", 2)
	tests := []struct {
		mailFrom string
		code     int
		enh      [3]int
	}{
		{"", 0, [3]int{}},
		{"alice@b.test", 0, [3]int{}},
		{"alice@aonly.test", 0, [3]int{}},
		{"alice@v6only.test", 0, [3]int{}},
		{"alice@[192.0.2.1]", 0, [3]int{}},
		{"alice@nullmx.test", 550, [3]int{5, 7, 27}},
		{"alice@nowhere.test", 550, [3]int{5, 1, 8}},
		{"alice@txtonly.test", 550, [3]int{5, 1, 8}},
		{"alice@servfail.test", 450, [3]int{4, 4, 3}},
	}
	for _, tc := range tests {
		r := e.checker.CheckSender(context.Background(), tc.mailFrom)
		switch {
		case tc.code == 0 && r != nil:
			t.Errorf("%q: refused with %v", tc.mailFrom, r)
		case tc.code != 0 && (r == nil || r.Code != tc.code || r.Enhanced != tc.enh):
			t.Errorf("%q: reply %v, want %d %v", tc.mailFrom, r, tc.code, tc.enh)
		}
	}
}

func TestDNSBL(t *testing.T) {
	e := newEnv(t)
	e.zone.Add(
		"10.2.0.192.bl.test. 300 IN A 127.0.0.2",
		"10.2.0.192.soft.test. 300 IN A 127.0.0.4",
		"7.100.51.198.bl.test. 300 IN A 127.0.0.1",         // 127.0.0.1 is never a listing
		"7.100.51.198.soft.test. 300 IN A 127.255.255.254", // an error code, not a listing
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test. 300 IN A 127.0.0.2",
	)
	ctx := context.Background()
	listed, err := mailauth.CheckDNSBL(ctx, e.checker.Resolver, net.ParseIP(senderIP), []string{"bl.test", "soft.test", "clean.test"})
	if err != nil || strings.Join(listed, ",") != "bl.test,soft.test" {
		t.Errorf("listed = %v, %v", listed, err)
	}
	if listed, _ := mailauth.CheckDNSBL(ctx, e.checker.Resolver, net.ParseIP(otherIP), []string{"bl.test", "soft.test"}); len(listed) != 0 {
		t.Errorf("otherIP listed = %v", listed)
	}
	if listed, _ := mailauth.CheckDNSBL(ctx, e.checker.Resolver, net.ParseIP("2001:db8::1"), []string{"bl.test"}); len(listed) != 1 {
		t.Errorf("IPv6 listed = %v", listed)
	}

	msg := e.sign(t, message("alice@b.test", "x", "x\r\n"), "b.test")
	e.checker.DNSBL = []mailauth.DNSBLZone{{Zone: "soft.test"}}
	if res := e.check(t, senderIP, "mail.b.test", "alice@b.test", msg); res.Action.Verdict != mailauth.Junk {
		t.Errorf("soft listing: %+v", res.Action)
	}
	e.checker.DNSBL = []mailauth.DNSBLZone{{Zone: "soft.test"}, {Zone: "bl.test", Reject: true}}
	if res := e.check(t, senderIP, "mail.b.test", "alice@b.test", msg); res.Action.Verdict != mailauth.Reject || res.Action.Reply.Code != 550 {
		t.Errorf("reject listing: %+v", res.Action)
	}
}

// TestForgedAuthResultsRemoved: a sender pre-fills our Authentication-Results
// claiming a pass; only ours survives, everything else is byte-identical.
func TestForgedAuthResultsRemoved(t *testing.T) {
	e := newEnv(t)
	orig := "Received: from x\r\n" +
		"Authentication-Results: mx.a.test; dmarc=pass header.from=b.test\r\n" +
		"Authentication-Results: other.example; spf=pass smtp.mailfrom=b.test\r\n" +
		"From: ceo@b.test\r\n" +
		"authentication-results: (forged)\r\n MX.A.TEST;\r\n\tdkim=pass header.d=b.test\r\n" +
		"Authentication-Results: \"mx.a.test\" 1; spf=pass\r\n" +
		"Authentication-Results: mx.a.test.evil.test; spf=pass\r\n" +
		"Subject: Authentication-Results: mx.a.test; x\r\n" +
		"\r\n" +
		"Authentication-Results: mx.a.test; in the body stays\r\n"
	want := "Received: from x\r\n" +
		"Authentication-Results: other.example; spf=pass smtp.mailfrom=b.test\r\n" +
		"From: ceo@b.test\r\n" +
		"Authentication-Results: mx.a.test.evil.test; spf=pass\r\n" +
		"Subject: Authentication-Results: mx.a.test; x\r\n" +
		"\r\n" +
		"Authentication-Results: mx.a.test; in the body stays\r\n"
	if got := string(mailauth.RemoveAuthResults([]byte(orig), "mx.a.test")); got != want {
		t.Errorf("RemoveAuthResults:\n%q\nwant\n%q", got, want)
	}
	clean := []byte("From: a@b.test\r\n\r\nbody\r\n")
	if got := mailauth.RemoveAuthResults(clean, "mx.a.test"); !bytes.Equal(got, clean) {
		t.Errorf("clean message changed: %q", got)
	}

	res := e.check(t, otherIP, "mail.other.test", "x@other.test", []byte(orig))
	stamped := string(e.checker.Stamp([]byte(orig), res))
	if stamped != res.Header+want {
		t.Errorf("Stamp:\n%q", stamped)
	}
	if !strings.Contains(res.Header, "dmarc=fail") {
		t.Errorf("our header:\n%s", res.Header)
	}
}

// TestSignVerifiesWithGoMsgauth: a message signed by Sign verifies with
// go-msgauth's verifier reading the keys from the fake zone, as a remote
// receiver would.
func TestSignVerifiesWithGoMsgauth(t *testing.T) {
	e := newEnv(t)
	msg := message("alice@b.test", "signed", "Body.\r\n", "Cc: c@b.test", "Reply-To: r@b.test")
	signed := e.sign(t, msg, "b.test")
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{
		LookupTXT: e.checker.Resolver.NetCompat().TXTFunc(context.Background()),
	})
	if err != nil || len(verifs) != 2 {
		t.Fatalf("verify: %d verifications, %v", len(verifs), err)
	}
	for _, v := range verifs {
		if v.Err != nil || v.Domain != "b.test" {
			t.Errorf("verification %+v", v)
		}
		h := strings.ToLower(strings.Join(v.HeaderKeys, ":"))
		for _, want := range []string{"from:from", "subject:subject", "to:to", "cc:cc", "reply-to:reply-to", "message-id", "date:date"} {
			if !strings.Contains(h, want) {
				t.Errorf("h= %s lacks %s", h, want)
			}
		}
	}
	if !bytes.HasSuffix(signed, msg) || !bytes.HasPrefix(signed, []byte("DKIM-Signature: ")) {
		t.Error("Sign must only prepend DKIM-Signature fields")
	}
}

func TestLogAttrs(t *testing.T) {
	e := newEnv(t)
	in := mailauth.Input{IP: net.ParseIP(senderIP), Helo: "mail.b.test", MailFrom: "alice@b.test",
		Rcpts: []string{"x@a.test", "y@a.test"}, Message: bytes.NewReader(e.sign(t, message("alice@b.test", "log", "x\r\n"), "b.test", e.keys.rsa))}
	res, err := e.checker.Check(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).LogAttrs(context.Background(), slog.LevelInfo, "received", res.LogAttrs(in)...)
	line := buf.String()
	for _, want := range []string{"ip=192.0.2.10", "helo=mail.b.test", "mail_from=alice@b.test", "rcpts=\"[x@a.test y@a.test]\"",
		"spf=pass", "dkim=pass:b.test", "dmarc=pass:b.test", "iprev=pass", "action=accept", "size=", "msgid=<1@b.test>"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %s: %s", want, line)
		}
	}
}

// A message From, Sender and MAIL FROM one of our domains, signed by it, is accepted; the store
// is asked whether that domain is ours once per message, not for each field that names it.
func TestLocalDomainAskedOncePerMessage(t *testing.T) {
	e := newEnv(t)
	asked := map[string]int{}
	e.checker.Policy.IsLocalDomain = func(d string) bool { asked[d]++; return d == "a.test" }
	msg := e.sign(t, message("alice@a.test", "hi", "hello\r\n", "Sender: alice@a.test"), "a.test")
	res := e.check(t, otherIP, "mail.other.test", "alice@a.test", msg)
	if res.Action.Verdict != mailauth.Accept {
		t.Fatalf("verdict %s (%s), want accept", res.Action.Verdict, res.Action.Reason)
	}
	if asked["a.test"] != 1 {
		t.Errorf("asked about a.test %d times, want once", asked["a.test"])
	}
}
