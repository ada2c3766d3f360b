package pop3_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"mailstead/pop3"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (c *client) capa() []string {
	c.t.Helper()
	c.cmd("CAPA", "+OK capability list follows")
	return c.multi()
}

// TestCapa: RFC 2449 capabilities; USER and SASL only where auth is
// allowed (RFC 2595 §4), STLS only before TLS on the plain port.
func TestCapa(t *testing.T) {
	common := "TOP|UIDL|RESP-CODES|AUTH-RESP-CODE|PIPELINING|"
	h := newHarness(t, nil)

	plain := h.dialPlain()
	if got := strings.Join(plain.capa(), "|"); got != common+"STLS|IMPLEMENTATION mailstead" {
		t.Errorf("CAPA on plain port before TLS = %q", got)
	}
	plain.cmd("STLS", "+OK begin TLS negotiation")
	plain.startTLS(h.tls.Client)
	afterSTLS := strings.Join(plain.capa(), "|")
	if afterSTLS != common+"USER|SASL PLAIN LOGIN|IMPLEMENTATION mailstead" {
		t.Errorf("CAPA after STLS = %q", afterSTLS)
	}
	implicit := h.dialTLS()
	if got := strings.Join(implicit.capa(), "|"); got != afterSTLS {
		t.Errorf("CAPA on implicit TLS = %q, want %q", got, afterSTLS)
	}
	implicit.cmd("USER "+alice, "+OK send PASS")
	implicit.cmdPrefix("PASS "+alicePw, "+OK")
	if got := strings.Join(implicit.capa(), "|"); got != afterSTLS {
		t.Errorf("CAPA in TRANSACTION = %q, want the same as before login (RFC 2449 §5)", got)
	}

	dev := newHarness(t, func(c *pop3.Config) { c.AllowInsecureAuth = true; c.TLSConfig = nil; c.Implementation = "dev" })
	if got := strings.Join(dev.dialPlain().capa(), "|"); got != common+"USER|SASL PLAIN LOGIN|IMPLEMENTATION dev" {
		t.Errorf("CAPA with insecure auth allowed and no TLS = %q", got)
	}
}

// TestAuthRequiresTLS: no credentials travel in clear text (RFC 2595 §4).
func TestAuthRequiresTLS(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dialPlain()
	refused := "-ERR authentication requires TLS: use STLS or the POP3S port"
	c.cmd("USER "+alice, refused)
	c.cmd("PASS "+alicePw, refused)
	c.cmd("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePw), refused)
	c.cmd("AUTH LOGIN", refused)
	c.cmd("STAT", "-ERR STAT is not valid before login")
	c.cmd("QUIT", "+OK bye")
	c.expectClosed()
	if strings.Contains(h.logs.String(), alicePw) {
		t.Fatal("password in the log")
	}

	// With AllowInsecureAuth (dev mode on loopback) it works in clear text.
	dev := newHarness(t, func(c *pop3.Config) { c.AllowInsecureAuth = true })
	d := dev.dialPlain()
	d.cmd("USER "+alice, "+OK send PASS")
	d.cmd("PASS "+alicePw, "+OK maildrop has 0 messages (0 octets)")
}

// TestSTLS covers the upgrade and its misuse.
func TestSTLS(t *testing.T) {
	h := newHarness(t, nil)
	h.deliverStrings(alice, msg1)
	c := h.dialPlain()
	c.cmd("STLS extra", "-ERR STLS takes no argument")
	c.cmd("STLS", "+OK begin TLS negotiation")
	c.startTLS(h.tls.Client)
	c.cmd("STLS", "-ERR already using TLS")
	c.cmd("USER "+alice, "+OK send PASS")
	c.cmd("PASS "+alicePw, fmt.Sprintf("+OK maildrop has 1 messages (%d octets)", len(msg1)))
	c.cmd("QUIT", "+OK bye, 1 messages left")

	h.dialTLS().cmd("STLS", "-ERR already using TLS")

	noTLS := newHarness(t, func(c *pop3.Config) { c.TLSConfig = nil })
	noTLS.dialPlain().cmd("STLS", "-ERR TLS is not available")
}

// TestSTLSDiscardsPipelinedInput: commands sent in clear text after STLS,
// before the handshake, must not run inside the TLS session (the STARTTLS
// command injection of CVE-2011-0411 and friends).
func TestSTLSDiscardsPipelinedInput(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dialPlain()
	c.send("STLS\r\nUSER " + alice + "\r\nCAPA")
	c.expect("+OK begin TLS negotiation")
	c.startTLS(h.tls.Client)
	// Had the injected USER run, PASS would now log in.
	c.cmd("PASS "+alicePw, "-ERR USER first")
	c.cmd("NOOP", "-ERR NOOP is not valid before login")
}

// TestUserPassSpaces: the password is the rest of the line (RFC 1939 §7).
func TestUserPassSpaces(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dialTLS()
	c.cmd("user "+alice, "+OK send PASS")
	c.cmd("pass "+alicePw, "+OK maildrop has 0 messages (0 octets)") // alicePw has spaces
}

// TestSASL: AUTH PLAIN with and without initial response (RFC 5034, RFC
// 4616) and AUTH LOGIN.
func TestSASL(t *testing.T) {
	h := newHarness(t, manyErrors)
	ok := "+OK maildrop has 0 messages (0 octets)"
	plain := b64("\x00" + alice + "\x00" + alicePw)
	tests := []struct {
		name  string
		steps [][2]string // client line, server reply
	}{
		{"plain initial response", [][2]string{{"AUTH PLAIN " + plain, ok}}},
		{"plain lower case", [][2]string{{"auth plain " + plain, ok}}},
		{"plain with authzid", [][2]string{{"AUTH PLAIN " + b64(alice+"\x00"+alice+"\x00"+alicePw), ok}}},
		{"plain challenge", [][2]string{{"AUTH PLAIN", "+ "}, {plain, ok}}},
		{"login", [][2]string{{"AUTH LOGIN", "+ " + b64("Username:")}, {b64(alice), "+ " + b64("Password:")}, {b64(alicePw), ok}}},
		{"login initial response", [][2]string{{"AUTH LOGIN " + b64(alice), "+ " + b64("Password:")}, {b64(alicePw), ok}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dialTLS()
			c.t = t
			for _, s := range tt.steps {
				c.cmd(s[0], s[1])
			}
			c.cmd("QUIT", "+OK bye, 0 messages left")
			c.expectClosed()
		})
	}

	failed := "-ERR [AUTH] authentication failed"
	bad := []struct {
		name  string
		steps [][2]string
	}{
		{"wrong password", [][2]string{{"AUTH PLAIN " + b64("\x00"+alice+"\x00wrong"), failed}}},
		{"other authzid", [][2]string{{"AUTH PLAIN " + b64(bob+"\x00"+alice+"\x00"+alicePw), failed}}},
		{"empty initial response", [][2]string{{"AUTH PLAIN =", failed}}},
		{"two fields", [][2]string{{"AUTH PLAIN " + b64(alice+"\x00"+alicePw), failed}}},
		{"bad base64", [][2]string{{"AUTH PLAIN !!!", failed}}},
		{"cancel", [][2]string{{"AUTH PLAIN", "+ "}, {"*", "-ERR authentication cancelled"}}},
		{"cancel login", [][2]string{{"AUTH LOGIN", "+ " + b64("Username:")}, {b64(alice), "+ " + b64("Password:")}, {"*", "-ERR authentication cancelled"}}},
		{"login wrong password", [][2]string{{"AUTH LOGIN " + b64(alice), "+ " + b64("Password:")}, {b64("nope"), failed}}},
		{"unknown mechanism", [][2]string{{"AUTH CRAM-MD5", "-ERR unsupported SASL mechanism"}}},
		{"too many arguments", [][2]string{{"AUTH PLAIN a b", "-ERR too many arguments"}}},
		{"unknown user", [][2]string{{"USER nobody@example.com", "+OK send PASS"}, {"PASS x", failed}}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dialTLS()
			c.t = t
			for _, s := range tt.steps {
				c.cmd(s[0], s[1])
			}
			c.cmd("STAT", "-ERR STAT is not valid before login") // still in AUTHORIZATION
		})
	}

	c := h.dialTLS()
	c.cmd("AUTH", "+OK supported mechanisms follow")
	if got := strings.Join(c.multi(), "|"); got != "PLAIN|LOGIN" {
		t.Fatalf("AUTH mechanism list = %q", got)
	}
	if strings.Contains(h.logs.String(), alicePw) {
		t.Fatal("password in the log")
	}
}

// TestAuthFailedLog pins the fail2ban line documented in the package doc,
// and the session limit on failed logins.
func TestAuthFailedLog(t *testing.T) {
	h := newHarness(t, func(c *pop3.Config) { c.MaxAuthFailures = 2 })
	c := h.dialTLS()
	c.cmd("USER "+alice, "+OK send PASS")
	c.cmd("PASS secret-guess-1", "-ERR [AUTH] authentication failed")
	c.cmd(`USER evil" ip=10.0.0.1 x=`, "+OK send PASS")
	c.cmd("PASS secret-guess-2", "-ERR [AUTH] authentication failed, closing connection")
	c.expectClosed()

	logs := h.logs.String()
	for _, want := range []string{
		`level=WARN msg="auth failed" proto=pop3 ip=127.0.0.1 user=alice@example.com` + "\n",
		`level=WARN msg="auth failed" proto=pop3 ip=127.0.0.1 user="evil\" ip=10.0.0.1 x="` + "\n",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Count(logs, `msg="auth failed"`) != 2 {
		t.Errorf("want exactly two auth failed lines:\n%s", logs)
	}
	if strings.Contains(logs, "secret-guess") {
		t.Fatal("password in the log")
	}

	h.login(alice, alicePw)
	if want := `level=INFO msg=login proto=pop3 ip=127.0.0.1 user=alice@example.com`; !strings.Contains(h.logs.String(), want) {
		t.Errorf("log lacks %q", want)
	}
}
