package server_test

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/mailtest"
)

// RFC 3461 end to end, with Python's smtplib as the submitting client: DSN is offered on 25, 587
// and 465. alice asks NOTIFY=SUCCESS for bob@b.test, whose server (mailstead B) offers DSN: A
// passes the parameters on and B reports "delivered" once bob's copy is stored. For carol@c.test,
// whose server does not offer DSN, A itself reports "relayed" (§6.2.1). Both reports carry the
// ENVID and ORCPT alice gave.
func TestInteropDSNSuccessReports(t *testing.T) {
	python := mailtest.Python(t)
	p := newPair(t, nil)
	p.startB(t)
	ipC := mailtest.RandomLoopbackIP()
	p.zone.Add("c.test. 300 IN MX 10 mx.c.test.", "mx.c.test. 300 IN A "+ipC)
	mx := &countingMX{seen: map[string]int{}}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &countingSession{mx: mx}, nil
	}))
	srv.Domain = "mx.c.test" // no EnableDSN: a next hop without the extension
	srv.ErrorLog = discardLog{}
	ln, err := netListen(ipC, 25+p.offset)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	script := `
import smtplib, ssl, sys
host, p25, p465, p587 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, p25); s.ehlo(); assert s.has_extn("dsn"), "no DSN on 25"; s.quit()
s = smtplib.SMTP_SSL(host, p465, context=ctx); s.ehlo(); assert s.has_extn("dsn"), "no DSN on 465"; s.quit()
s = smtplib.SMTP(host, p587); s.starttls(context=ctx); s.ehlo()
assert s.has_extn("dsn"), "no DSN on 587"
s.login("alice@a.test", "alice-pw")
for rcpt, seq in (("bob@b.test", 1), ("carol@c.test", 2)):
    msg = ("From: alice@a.test\r\nTo: %s\r\nSubject: dsn %d\r\nX-Seq: %d\r\n\r\nHello.\r\n" % (rcpt, seq, seq)).encode()
    refused = s.sendmail("alice@a.test", [rcpt], msg, mail_options=["RET=HDRS", "ENVID=lunch-%d" % seq],
        rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;" + rcpt.upper()])
    assert refused == {}, refused
s.quit()
print("ok")
`
	port := func(std int) string { return strconv.Itoa(std + p.offset) }
	out, err := exec.Command(python, "-c", script, ipA, port(25), port(465), port(587)).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("ok")) {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	var reports []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's queue: %+v\nB's queue: %+v\nalice's Junk: %d", queueOf(t, p.a.Store()), queueOf(t, p.b.Store()),
				len(mailtest.Mailbox(t, p.a.Store(), "alice@a.test", "Junk")))
			for _, m := range mailtest.Mailbox(t, p.a.Store(), "alice@a.test", "INBOX") {
				t.Logf("alice has:\n%s", m)
			}
		}
	})
	waitFor(t, "two reports for alice", time.Minute, func() bool {
		reports = reports[:0]
		for _, m := range mailtest.Mailbox(t, p.a.Store(), "alice@a.test", "INBOX") {
			reports = append(reports, string(m))
		}
		return len(reports) == 2
	})
	byAction := map[string]string{}
	for _, r := range reports {
		for _, a := range []string{"delivered", "relayed"} {
			if strings.Contains(r, "Action: "+a+"\r\n") {
				byAction[a] = r
			}
		}
	}
	want := map[string][]string{
		"delivered": {"Reporting-MTA: dns; mail.b.test", "Final-Recipient: rfc822; bob@b.test",
			"Original-Recipient: rfc822; BOB@B.TEST", "Original-Envelope-Id: lunch-1", "Status: 2.0.0", "Subject: Delivered: dsn 1"},
		"relayed": {"Reporting-MTA: dns; mail.a.test", "Final-Recipient: rfc822; carol@c.test",
			"Original-Recipient: rfc822; CAROL@C.TEST", "Original-Envelope-Id: lunch-2", "Remote-MTA: dns; mx.c.test", "Subject: Relayed: dsn 2"},
	}
	for action, lines := range want {
		r, ok := byAction[action]
		if !ok {
			t.Errorf("no %q report among:\n%s", action, strings.Join(reports, "\n----\n"))
			continue
		}
		for _, l := range lines {
			if !strings.Contains(r, l) {
				t.Errorf("%s report lacks %q:\n%s", action, l, r)
			}
		}
		if strings.Contains(r, "Hello.") {
			t.Errorf("%s report carries the body (RET=HDRS):\n%s", action, r)
		}
	}
	if d, n := mx.counts(); d != 1 || n != 1 {
		t.Errorf("c.test got %d deliveries of %d messages, want 1", n, d)
	}
}
