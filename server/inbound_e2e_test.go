package server_test

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/mailauth"
	"mailstead/mailtest"
)

// sendFrom delivers msg over SMTP from a chosen loopback source address, as a remote MTA would.
func sendFrom(t *testing.T, srcIP, addr, from, rcpt string, msg []byte) error {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcIP)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("mx.sender.test"); err != nil {
		return err
	}
	return c.SendMail(from, []string{rcpt}, bytes.NewReader(msg))
}

// TestInboundAuthentication: a message DKIM-signed by sender.test and sent from its SPF-listed
// address arrives with dkim=pass spf=pass dmarc=pass; forgeries of that domain from elsewhere are
// rejected (p=reject) or sent to Junk (p=quarantine); a forged Authentication-Results claiming our
// name is removed.
func TestInboundAuthentication(t *testing.T) {
	zone := mailtest.NewDNSZone(t)
	srv := mailtest.Start(t, mailtest.Options{DNS: zone.Addr()})
	rsaPEM, rsaTXT, err := mailauth.GenerateRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	edPEM, edTXT, err := mailauth.GenerateEd25519Key()
	if err != nil {
		t.Fatal(err)
	}
	const good = "127.0.0.1" // sender.test's SPF-listed MTA
	zone.Add("sender.test. 300 IN MX 10 mx.sender.test.", "mx.sender.test. 300 IN A "+good,
		"strict.test. 300 IN MX 10 mx.sender.test.", "loose.test. 300 IN MX 10 mx.sender.test.")
	zone.AddTXT("sender.test.", "v=spf1 ip4:"+good+" -all")
	zone.AddTXT("_dmarc.sender.test.", "v=DMARC1; p=reject")
	zone.AddTXT(mailauth.SelectorRSA+"._domainkey.sender.test.", rsaTXT)
	zone.AddTXT(mailauth.SelectorEd25519+"._domainkey.sender.test.", edTXT)
	zone.AddTXT("loose.test.", "v=spf1 ip4:"+good+" -all")
	zone.AddTXT("_dmarc.loose.test.", "v=DMARC1; p=quarantine")
	zone.AddPTR(good, "mx.sender.test")

	rsaKey, _ := mailauth.ParsePrivateKey(rsaPEM)
	edKey, _ := mailauth.ParsePrivateKey(edPEM)
	plain := []byte("From: Alice <alice@sender.test>\r\nTo: alice@example.test\r\nSubject: signed\r\n" +
		"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n" +
		"Authentication-Results: mail.example.test; dkim=pass (forged)\r\n\r\nhello\r\n")
	signed, err := mailauth.Sign(plain, "sender.test",
		mailauth.SigningKey{Selector: mailauth.SelectorRSA, Signer: rsaKey},
		mailauth.SigningKey{Selector: mailauth.SelectorEd25519, Signer: edKey})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Opts.Addr(25)
	if err := sendFrom(t, good, addr, "bounces@sender.test", "alice@example.test", signed); err != nil {
		t.Fatalf("authentic mail refused: %v", err)
	}
	box := mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")
	if len(box) != 1 {
		t.Fatalf("INBOX has %d messages", len(box))
	}
	got := string(box[0])
	for _, want := range []string{"Authentication-Results: mail.example.test;", "dkim=pass", "spf=pass", "dmarc=pass"} {
		if !strings.Contains(got, want) {
			t.Errorf("stored message lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "(forged)") {
		t.Errorf("forged Authentication-Results kept:\n%s", got)
	}

	// The same domain, unsigned, from an address SPF does not list: DMARC p=reject → 550 5.7.1.
	forged := []byte("From: ceo@sender.test\r\nSubject: wire money\r\n\r\nnow\r\n")
	err = sendFrom(t, "127.0.0.9", addr, "ceo@sender.test", "alice@example.test", forged)
	if code := replyCode(err); code != 550 || !strings.Contains(err.Error(), "5.7.1") && !strings.Contains(err.Error(), "DMARC") {
		t.Fatalf("forgery under p=reject: %v, want 550 5.7.1", err)
	}
	// p=quarantine: accepted into Junk.
	quarantined := []byte("From: news@loose.test\r\nSubject: maybe\r\n\r\nhi\r\n")
	if err := sendFrom(t, "127.0.0.9", addr, "news@loose.test", "alice@example.test", quarantined); err != nil {
		t.Fatalf("p=quarantine forgery: %v", err)
	}
	if junk := mailtest.Mailbox(t, srv.Store(), "alice@example.test", "Junk"); len(junk) != 1 || !strings.Contains(string(junk[0]), "dmarc=fail") {
		t.Fatalf("Junk: %d messages, want the quarantined one with dmarc=fail", len(junk))
	}
	// Mail claiming our own domain from outside fails authentication and is refused.
	spoof := []byte("From: alice@example.test\r\nSubject: it is me\r\n\r\nhi\r\n")
	if err := sendFrom(t, "127.0.0.9", addr, "alice@example.test", "alice@example.test", spoof); replyCode(err) != 550 {
		t.Fatalf("spoof of our own domain: %v, want 550", err)
	}
	if n := len(mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")); n != 1 {
		t.Fatalf("INBOX has %d messages, want only the authentic one", n)
	}
	// A sender domain that does not exist is refused at MAIL FROM.
	if err := sendFrom(t, good, addr, "x@nowhere.test", "alice@example.test", plain); replyCode(err) != 550 {
		t.Fatalf("nonexistent sender domain: %v, want 550", err)
	}
}
