package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest"
)

// letterFixture is a server for example.test with alice, bob and an admin, and a second domain
// other.test with no alias at all, for the raw exchanges of TestSMTPByTheLetter.
func letterFixture(t *testing.T) *mailtest.Server {
	t.Helper()
	srv := mailtest.Start(t, mailtest.Options{
		Accounts: map[string]string{"alice@example.test": "alice-pw", "bob@example.test": "bob-pw"},
		Settings: map[string]string{"smtp.max_connections_per_ip": "100"},
	})
	ctx := context.Background()
	st := srv.Store()
	if _, err := st.AddAccount(ctx, "admin@example.test", "admin-pw", true); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, "other.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddAccount(ctx, "dora@other.test", "dora-pw", false); err != nil {
		t.Fatal(err)
	}
	return srv
}

// letterStep is one line a client sends and the reply it must get. has and lacks are checked
// against the whole (multi-line) reply.
type letterStep struct {
	send, want  string
	wantSub     string // the reply on 587 and 465 when it differs from want (port 25's)
	has, lacks  []string
	deliveredTo string   // after the reply, this mailbox must hold exactly one more message
	storedLacks []string // ... whose stored copy lacks these
}

// openLetterSession connects to port 25, 587 or 465 and brings the session to the point where
// MAIL may be given: EHLO on 25; STARTTLS, EHLO and AUTH on 587; implicit TLS, EHLO and AUTH
// on 465. It returns the conversation and the MAIL FROM address the port accepts.
func openLetterSession(t *testing.T, srv *mailtest.Server, port int) (*conversation, string) {
	t.Helper()
	cv := dialLetter(t, srv.Opts.Addr(port), port == 465)
	cv.cmd("EHLO client.remote.test", "250 ")
	if port == 25 {
		return cv, "x@remote.test"
	}
	if port == 587 {
		cv.cmd("STARTTLS", "220 ")
		cv.startTLS()
		cv.cmd("EHLO client.remote.test", "250 ")
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00alice@example.test\x00alice-pw"))
	cv.cmd("AUTH PLAIN "+cred, "235 ")
	return cv, "alice@example.test"
}

func dialLetter(t *testing.T, addr string, implicitTLS bool) *conversation {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cv := &conversation{t: t, c: c}
	if implicitTLS {
		cv.startTLS()
	} else {
		cv.r = bufio.NewReader(c)
	}
	cv.expect("220 ")
	return cv
}

func (cv *conversation) startTLS() {
	cv.t.Helper()
	tc := tls.Client(cv.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		cv.t.Fatalf("TLS handshake: %v", err)
	}
	cv.c, cv.r = tc, bufio.NewReader(tc)
}

// wholeReply reads one reply and returns all its lines.
func (cv *conversation) wholeReply() []string {
	cv.t.Helper()
	var lines []string
	for {
		line, err := cv.r.ReadString('\n')
		if err != nil {
			cv.t.Fatalf("read reply: %v (got %q)", err, line)
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
		if len(line) < 4 || line[3] != '-' {
			return lines
		}
	}
}

// TestSMTPByTheLetter plays each raw exchange of issue 18 on the MX port and both submission
// ports: a client says X, the server answers what the RFC cited says.
func TestSMTPByTheLetter(t *testing.T) {
	srv := letterFixture(t)
	msg := "From: <{from}>\r\nTo: <postmaster@example.test>\r\nSubject: hello postmaster\r\n\r\nHi.\r\n."
	tests := []struct {
		name  string
		ports []int // nil: 25, 587 and 465
		steps []letterStep
	}{
		{name: "unknown command is 500 5.5.1 (RFC 5321 §4.2.4)", steps: []letterStep{
			{send: "XYZZY frobnicate", want: "500 5.5.1", lacks: []string{"XYZZY"}},
			{send: "XYZZY", want: "500 5.5.1"},
			{send: "AB", want: "500 5.5.1"},
			{send: "NOOP", want: "250 "},
		}},
		{name: "unknown MAIL parameter is 555 5.5.4 (RFC 5321 §4.1.1.11)", steps: []letterStep{
			{send: "MAIL FROM:<{from}> XBOGUSPARAM=1", want: "555 5.5.4"},
			{send: "MAIL FROM:<{from}>", want: "250 "},
		}},
		{name: "unknown RCPT parameter is 555 5.5.4 (RFC 5321 §4.1.1.11)", steps: []letterStep{
			{send: "MAIL FROM:<{from}>", want: "250 "},
			{send: "RCPT TO:<bob@example.test> XBOGUSPARAM=1", want: "555 5.5.4"},
			{send: "RCPT TO:<bob@example.test>", want: "250 "},
		}},
		{name: "NUL in a command line is refused and not echoed", steps: []letterStep{
			{send: "MAIL FROM:<nul\x00test@sender.example>", want: "500 5.5.2", lacks: []string{"\x00", "nul"}},
			{send: "RCPT TO:<bob@example.test>", want: "503 5.5.1"},
			{send: "MAIL FROM:<{from}>", want: "250 "},
			{send: "RCPT TO:<bob\x00@example.test>", want: "500 5.5.2", lacks: []string{"\x00"}},
		}},
		{name: "SIZE of up to 20 digits over the limit is 552 5.3.4 (RFC 1870)", steps: []letterStep{
			{send: "MAIL FROM:<{from}> SIZE=999999999999", want: "552 5.3.4"},
			{send: "MAIL FROM:<{from}> SIZE=99999999999999999999", want: "552 5.3.4"},
			{send: "MAIL FROM:<{from}> SIZE=999999999999999999999", want: "501 5.5.4"},
			{send: "MAIL FROM:<{from}> SIZE=12x", want: "501 5.5.4"},
			{send: "MAIL FROM:<{from}> SIZE=1000", want: "250 "},
		}},
		{name: "postmaster@ is accepted without an alias and reaches the admin (RFC 5321 §4.5.1)", steps: []letterStep{
			{send: "MAIL FROM:<{from}>", want: "250 "},
			{send: "RCPT TO:<postmaster@example.test>", want: "250 "},
			{send: "DATA", want: "354 "},
			{send: msg, want: "250 ", deliveredTo: "admin@example.test"},
		}},
		{name: "postmaster@ of a domain without an admin reaches the server's admin", steps: []letterStep{
			{send: "MAIL FROM:<{from}>", want: "250 "},
			{send: "RCPT TO:<PostMaster@other.test>", want: "250 "},
			{send: "DATA", want: "354 "},
			{send: msg, want: "250 ", deliveredTo: "admin@example.test"},
		}},
		{name: "bare <Postmaster> is accepted (RFC 5321 §4.1.1.3)", steps: []letterStep{
			{send: "MAIL FROM:<{from}>", want: "250 "},
			{send: "RCPT TO:<Postmaster>", want: "250 "},
			{send: "DATA", want: "354 "},
			{send: msg, want: "250 ", deliveredTo: "admin@example.test"},
		}},
		// Identity (RFC 5322 §3.6, RFC 7489, RFC 6409 §6.1): on 25 an unauthenticated claim to
		// one of our domains is 550 5.7.1; on submission alice may not show admin's address.
		{name: "From display name shows our address", steps: identitySteps(`From: "admin@example.test" <{from}>`, "550 5.7.1", "553 5.7.1")},
		{name: "From encoded-word display name shows our address", steps: identitySteps("From: =?utf-8?q?admin=40example.test?= <{from}>", "550 5.7.1", "553 5.7.1")},
		{name: "From comment shows our address", steps: identitySteps("From: {from} (admin@example.test)", "550 5.7.1", "553 5.7.1")},
		{name: "Sender is ours", steps: identitySteps("From: {from}\r\nSender: admin@example.test", "550 5.7.1", "553 5.7.1")},
		{name: "Resent-From is ours", steps: identitySteps("From: {from}\r\nResent-From: admin@example.test", "550 5.7.1", "553 5.7.1")},
		{name: "two From fields, one ours", steps: identitySteps("From: admin@example.test\r\nFrom: {from}", "550 5.7.1", "550 5.7.1")},
		{name: "From list mixing ours", steps: identitySteps("From: {from}, admin@example.test", "550 5.7.1", "553 5.7.1")},
		{name: "From group holding ours", steps: identitySteps("From: staff: admin@example.test;", "550 5.7.1", "553 5.7.1")},
		{name: "From quoted local part shows ours", steps: identitySteps(`From: "admin@example.test"@evil.test`, "550 5.7.1", "553 5.7.1")},
		{name: "From without closing bracket", steps: identitySteps("From: admin@example.test <{from}", "550 5.7.1", "550 5.7.1")},
		{name: "empty From is refused naming RFC 5322", steps: identitySteps("From:", "550 5.7.1", "550 5.7.1", "RFC 5322 section 3.6")},
		{name: "no From is refused naming RFC 5322", steps: identitySteps("X-No-From: yes", "550 5.7.1", "550 5.7.1", "RFC 5322 section 3.6")},
		{name: "own address shown plainly is fine", steps: identitySteps(`From: "Sender" <{from}>`, "250 ", "250 ")},
		{name: "our Authentication-Results removed with trailing dot and any case", ports: []int{25}, steps: []letterStep{
			{send: "MAIL FROM:<{from}>", want: "250 "},
			{send: "RCPT TO:<bob@example.test>", want: "250 "},
			{send: "DATA", want: "354 "},
			{send: "Authentication-Results: MAIL.Example.TEST.; dkim=pass header.d=example.test\r\n" +
				"Authentication-Results: mail.example.test; spf=pass\r\nFrom: <{from}>\r\nSubject: forged results\r\n\r\nHi.\r\n.",
				want: "250 ", deliveredTo: "bob@example.test", storedLacks: []string{"MAIL.Example.TEST.", "spf=pass\r\nFrom"}},
		}},
		{name: "MX offers no AUTH", ports: []int{25}, steps: []letterStep{
			{send: "EHLO client.remote.test", want: "250 ", lacks: []string{"AUTH"}},
		}},
		{name: "submission offers the legacy AUTH= line too", ports: []int{587, 465}, steps: []letterStep{
			{send: "EHLO client.remote.test", want: "250 ", has: []string{"250-AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN", "250-AUTH=SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN"}},
		}},
	}
	for _, tt := range tests {
		ports := tt.ports
		if ports == nil {
			ports = []int{25, 587, 465}
		}
		for _, port := range ports {
			t.Run(tt.name+"/"+portName(port), func(t *testing.T) {
				cv, from := openLetterSession(t, srv, port)
				for _, st := range tt.steps {
					before := 0
					if st.deliveredTo != "" {
						before = len(mailtest.Mailbox(t, srv.Store(), st.deliveredTo, "INBOX"))
					}
					line := strings.ReplaceAll(st.send, "{from}", from)
					cv.send(line + "\r\n")
					reply := cv.wholeReply()
					last := reply[len(reply)-1]
					want := st.want
					if port != 25 && st.wantSub != "" {
						want = st.wantSub
					}
					if !strings.HasPrefix(last, want) {
						t.Fatalf("%q: reply %q, want %q", line, reply, want)
					}
					all := strings.Join(reply, "\n")
					for _, s := range st.has {
						if !strings.Contains(all, s) {
							t.Errorf("%q: reply %q lacks %q", line, reply, s)
						}
					}
					for _, s := range st.lacks {
						if strings.Contains(all, s) {
							t.Errorf("%q: reply %q contains %q", line, reply, s)
						}
					}
					if st.deliveredTo != "" {
						box := mailtest.Mailbox(t, srv.Store(), st.deliveredTo, "INBOX")
						if len(box) != before+1 {
							t.Fatalf("%s holds %d messages, want %d", st.deliveredTo, len(box), before+1)
						}
						for _, s := range st.storedLacks {
							if strings.Contains(string(box[len(box)-1]), s) {
								t.Errorf("stored message holds %q:\n%s", s, box[len(box)-1])
							}
						}
					}
				}
			})
		}
	}
}

// identitySteps sends one message with the given header lines to bob and expects mx on port 25
// and sub on the submission ports, each reply holding has.
func identitySteps(header, mx, sub string, has ...string) []letterStep {
	return []letterStep{
		{send: "MAIL FROM:<{from}>", want: "250 "},
		{send: "RCPT TO:<bob@example.test>", want: "250 "},
		{send: "DATA", want: "354 "},
		{send: header + "\r\nTo: bob@example.test\r\nSubject: who am I\r\n\r\nHi.\r\n.", want: mx, wantSub: sub, has: has},
	}
}

func portName(port int) string {
	switch port {
	case 25:
		return "mx25"
	case 587:
		return "submission587"
	}
	return "submissions465"
}
