package queue

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	mdns "github.com/miekg/dns"

	"mailstead/mailauth"
	"mailstead/store"
)

// startSTSServer serves policy as https://mta-sts.b.test/.well-known/mta-sts.txt on ip:443+offset.
func startSTSServer(t *testing.T, e *env, ip, policy string) *atomic.Int32 {
	t.Helper()
	var fetches atomic.Int32
	cert := e.ca.issue(t, "mta-sts.b.test")
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(443+e.offset)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.b.test" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(strings.ReplaceAll(policy, "\n", "\r\n")))
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	e.zone.Add("mta-sts.b.test. 300 IN A "+ip, `_mta-sts.b.test. 300 IN TXT "v=STSv1; id=20261129"`)
	return &fetches
}

// MTA-STS enforce with an MX the policy does not name: deferred, and nothing is sent at all.
func TestMTASTSEnforceNonMatchingMXDefers(t *testing.T) {
	e := newEnv(t, "127.0.0.40", "127.0.0.41")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.40")
	far := startFarSide(t, "127.0.0.40", 25+e.offset, nil) // plain text only
	startSTSServer(t, e, "127.0.0.41", "version: STSv1\nmode: enforce\nmx: mx.other.test\nmax_age: 86400\n")
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test")
	e.waitFor("a deferral", func() bool {
		l, _ := e.st.QueueList(context.Background())
		return len(l) == 1 && l[0].Attempts >= 1
	})
	l, _ := e.st.QueueList(context.Background())
	if !strings.Contains(l[0].LastError, "MTA-STS") {
		t.Fatalf("deferral reason %q does not name MTA-STS", l[0].LastError)
	}
	far.mu.Lock()
	mails := far.mails
	far.mu.Unlock()
	if mails != 0 || len(far.messages()) != 0 {
		t.Fatal("mail went to an MX the MTA-STS policy does not allow")
	}
	// The policy is cached in the store.
	b, err := e.st.GetKV(context.Background(), "mtasts/b.test")
	if err != nil {
		t.Fatal(err)
	}
	var p stsPolicy
	if err := json.Unmarshal(b, &p); err != nil || p.Mode != "enforce" || p.ID != "20261129" {
		t.Fatalf("cached policy %s, %v", b, err)
	}
}

// MTA-STS enforce with a matching MX: delivered over TLS when the certificate is valid; deferred,
// never in clear, when the MX offers no STARTTLS or a certificate for another name.
func TestMTASTSEnforce(t *testing.T) {
	for _, c := range []struct {
		name      string
		certFor   string // "" for no STARTTLS
		delivered bool
	}{
		{"valid certificate", "mx.b.test", true},
		{"no STARTTLS", "", false},
		{"certificate for another name", "mx.evil.test", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "127.0.0.42", "127.0.0.43")
			e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.42")
			var far *farSide
			if c.certFor != "" {
				cert := e.ca.issue(t, c.certFor)
				far = startFarSide(t, "127.0.0.42", 25+e.offset, &cert)
			} else {
				far = startFarSide(t, "127.0.0.42", 25+e.offset, nil)
			}
			fetches := startSTSServer(t, e, "127.0.0.43", "version: STSv1\nmode: enforce\nmx: *.b.test\nmax_age: 86400\n")
			e.start()
			e.submit("alice@a.test", testMsg, "bob@b.test")
			if c.delivered {
				e.waitFor("delivery", func() bool { return e.queueLen() == 0 })
				if m := far.messages(); len(m) != 1 || !m[0].tls {
					t.Fatalf("far side messages: %+v", m)
				}
				// A second message uses the cached policy: no second fetch.
				e.submit("alice@a.test", testMsg, "bob@b.test")
				e.waitFor("second delivery", func() bool { return e.queueLen() == 0 })
				if n := fetches.Load(); n != 1 {
					t.Fatalf("policy fetched %d times, want 1 (cached)", n)
				}
				return
			}
			e.waitFor("a deferral", func() bool {
				l, _ := e.st.QueueList(context.Background())
				return len(l) == 1 && l[0].Attempts >= 2
			})
			far.mu.Lock()
			defer far.mu.Unlock()
			if far.mails != 0 {
				t.Fatal("mail was sent without verified TLS under an enforce policy")
			}
		})
	}
}

func TestParseSTSPolicy(t *testing.T) {
	p, err := parseSTSPolicy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n")
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "x.example.net": true,
		"example.net": false, "a.b.example.net": false, "mail.example.org": false,
	} {
		if got := p.matches(h); got != want {
			t.Errorf("matches(%q) = %v, want %v", h, got, want)
		}
	}
	for _, bad := range []string{
		"mode: enforce\nmx: a\nmax_age: 1\n",                   // no version
		"version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",    // bad mode
		"version: STSv1\nmode: enforce\nmax_age: 1\n",          // no mx
		"version: STSv1\nmode: enforce\nmx: a\nmax_age: -4\n",  // bad age
		"version: STSv2\nmode: enforce\nmx: a\nmax_age: 10\n",  // version
		"version: STSv1\nmode: enforce\nmx: a\nmax_age: ten\n", // age
	} {
		if _, err := parseSTSPolicy(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// A smarthost gets everything, with AUTH over TLS; over implicit TLS (465) as well.
func TestSmarthost(t *testing.T) {
	for _, mode := range []string{"starttls", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, "127.0.0.44")
			e.zone.Add("smart.test. 300 IN A 127.0.0.44")
			cert := e.ca.issue(t, "smart.test")
			port := 25 + e.offset
			relay := startFarSideOpts(t, "127.0.0.44", port, farOpts{cert: &cert, implicit: mode == "implicit", users: map[string]string{"me": "secret"}})
			ctx := context.Background()
			for k, v := range map[string]string{"queue.smarthost": "smart.test:" + strconv.Itoa(port), "queue.smarthost_user": "me",
				"queue.smarthost_password": "secret", "queue.smarthost_tls": mode} {
				if err := e.st.SetSetting(ctx, k, v); err != nil {
					t.Fatal(err)
				}
			}
			e.start()
			// No MX for far.test exists at all: the smarthost route does not need one.
			e.submit("alice@a.test", testMsg, "bob@far.test")
			e.waitFor("relay", func() bool { return e.queueLen() == 0 })
			if m := relay.messages(); len(m) != 1 || !m[0].tls || len(relay.authed) != 1 {
				t.Fatalf("relay got %+v, logins %v", m, relay.authed)
			}
		})
	}
}

// SMTPUTF8 mail to a server without SMTPUTF8 bounces with a reason that says so.
func TestSMTPUTF8ToServerWithoutIt(t *testing.T) {
	e := newEnv(t, "127.0.0.45")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.45")
	far := startFarSideOpts(t, "127.0.0.45", 25+e.offset, farOpts{noSMTPUTF8: true})
	e.start()
	e.submit("alice@a.test", testMsg, "jörg@b.test")
	e.waitFor("the bounce", func() bool { return len(e.inbox()) == 1 })
	d := string(e.inbox()[0])
	if !strings.Contains(d, "Status: 5.6.7") || !strings.Contains(d, "SMTPUTF8") {
		t.Fatalf("bounce:\n%s", d)
	}
	if len(far.messages()) != 0 {
		t.Fatal("SMTPUTF8 mail sent to a server without SMTPUTF8")
	}
}

// Keys made at domain creation sign with RSA and Ed25519; both signatures verify against their
// published records.
func TestDKIMSignAndRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keys, err := ensureKeys(ctx, e.st, "a.test")
	if err != nil || len(keys) != 2 || keys[0].Algorithm() != "rsa" || keys[1].Algorithm() != "ed25519" {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	again, err := mailauth.Keys(ctx, e.st, "a.test")
	if err != nil || len(again) != 2 || again[0].Selector != keys[0].Selector {
		t.Fatal("keys read back differ from the ones stored")
	}
	for _, k := range keys {
		txt := k.TXT()
		var quoted []string // RFC 1035 §3.3.14: strings of at most 255 bytes
		for len(txt) > 255 {
			quoted, txt = append(quoted, `"`+txt[:255]+`"`), txt[255:]
		}
		quoted = append(quoted, `"`+txt+`"`)
		line := k.Selector + "._domainkey.a.test. 3600 IN TXT " + strings.Join(quoted, " ")
		rr, err := mdns.NewRR(line)
		if err != nil {
			t.Fatalf("record %q does not parse: %v", line, err)
		}
		e.zone.Add(rr.String())
	}
	msg := []byte(strings.ReplaceAll(testMsg, "\n", "\r\n"))
	h, err := mailauth.NewSigner(e.st).SignFrom(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	signed := append(h, msg...)
	vs, err := dkim.VerifyWithOptions(strings.NewReader(string(signed)), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return e.zone.LookupTXT(ctx, name) },
	})
	if err != nil || len(vs) != 2 {
		t.Fatalf("verify: %v, %v", vs, err)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "a.test" {
			t.Errorf("signature %+v failed: %v", v, v.Err)
		}
	}
	if !strings.Contains(string(h), "c=relaxed/relaxed") || !strings.Contains(string(h), "a=ed25519-sha256") {
		t.Fatalf("signature header: %s", h)
	}
	if h, err := mailauth.NewSigner(e.st).SignFrom(ctx, []byte("From: x@elsewhere.test\r\n\r\nhi\r\n")); err != nil || h != nil {
		t.Fatalf("signing for a domain without keys: %q, %v", h, err)
	}
}

// A Signer keeps parsed keys, but a key replaced in the store signs from the next message on:
// after new keys are stored and published, both signatures verify against the new records only.
func TestSignerReplacedKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := mailauth.NewSigner(e.st)
	msg := []byte(strings.ReplaceAll(testMsg, "\n", "\r\n"))
	verify := func(keys []mailauth.DKIMKey, h []byte) {
		t.Helper()
		records := map[string]string{}
		for _, k := range keys {
			records[k.Selector+"._domainkey.a.test"] = k.TXT()
		}
		vs, err := dkim.VerifyWithOptions(strings.NewReader(string(append(h, msg...))), &dkim.VerifyOptions{
			LookupTXT: func(name string) ([]string, error) { return []string{records[strings.TrimSuffix(name, ".")]}, nil },
		})
		if err != nil || len(vs) != 2 {
			t.Fatalf("verify: %v, %v", vs, err)
		}
		for _, v := range vs {
			if v.Err != nil {
				t.Fatalf("signature by %s does not verify: %v", v.Domain, v.Err)
			}
		}
	}
	for round := range 2 {
		keys, err := ensureKeys(ctx, e.st, "a.test")
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.SignFrom(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		verify(keys, h)
		if round == 0 { // replace both keys under the same selectors
			kv, err := mailauth.NewKeys("a.test")
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range kv {
				if err := e.st.PutKV(ctx, k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// ensureKeys stores a domain's two keys unless it has keys, as domain-add does, and reads them.
func ensureKeys(ctx context.Context, st *store.Store, domain string) ([]mailauth.DKIMKey, error) {
	if keys, err := mailauth.Keys(ctx, st, domain); err != nil || len(keys) > 0 {
		return keys, err
	}
	kv, err := mailauth.NewKeys(domain)
	if err != nil {
		return nil, err
	}
	for k, v := range kv {
		if err := st.PutKV(ctx, k, v); err != nil {
			return nil, err
		}
	}
	return mailauth.Keys(ctx, st, domain)
}
