package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/mailtest"
)

// receiveFixture is a server for example.test with alice and bob, an alias, and a catch-all on
// catchall.test that delivers to bob.
func receiveFixture(t *testing.T) *mailtest.Server {
	t.Helper()
	srv := mailtest.Start(t, mailtest.Options{
		Accounts: map[string]string{"alice@example.test": "alice-pw", "bob@example.test": "bob-pw"},
		Settings: map[string]string{"smtp.max_message_size": fmt.Sprint(25 << 20), "smtp.max_connections_per_ip": "30"},
	})
	ctx := context.Background()
	st := srv.Store()
	if err := st.AddAlias(ctx, "team@example.test", []string{"alice@example.test", "bob@example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, "catchall.test"); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAlias(ctx, "@catchall.test", []string{"bob@example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, "bücher.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddAccount(ctx, "carol@bücher.test", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	return srv
}

// send delivers msg with go-smtp's client over STARTTLS and returns the error of the transaction.
func send(t *testing.T, addr, from string, to []string, msg []byte, opts *gosmtp.MailOptions) error {
	t.Helper()
	c, err := gosmtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.remote.test"); err != nil {
		return err
	}
	if err := c.Mail(from, opts); err != nil {
		return err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// stripAdded removes the headers mailstead adds (Return-Path, Delivered-To, Received) and returns
// them separately from the original message.
func stripAdded(t *testing.T, stored []byte) (added string, original []byte) {
	t.Helper()
	i := bytes.Index(stored, []byte("Received: "))
	if i < 0 || !bytes.HasPrefix(stored, []byte("Return-Path: ")) {
		t.Fatalf("stored message lacks trace headers:\n%s", stored)
	}
	rest := stored[i:]
	// The Received: header ends at the first line that does not start with a tab.
	end := 0
	for {
		nl := bytes.Index(rest[end:], []byte("\r\n"))
		end += nl + 2
		if end >= len(rest) || rest[end] != '\t' {
			break
		}
	}
	return string(stored[:i]) + string(rest[:end]), rest[end:]
}

func TestReceiveDeliversToEachKindOfRecipient(t *testing.T) {
	srv := receiveFixture(t)
	addr := srv.Opts.Addr(25)
	msg := []byte("From: someone@remote.test\r\nTo: x\r\nSubject: hello\r\n\r\nbody line\r\n.starts with a dot\r\n..two dots\r\n")
	tests := []struct {
		rcpt    string
		account string
		delivTo string
	}{
		{"alice@example.test", "alice@example.test", "alice@example.test"},
		{"Alice@EXAMPLE.test", "alice@example.test", "alice@example.test"},
		{"alice+lists@example.test", "alice@example.test", "alice+lists@example.test"},
		{"anyone@catchall.test", "bob@example.test", "anyone@catchall.test"},
		{"carol@xn--bcher-kva.test", "carol@bücher.test", "carol@xn--bcher-kva.test"},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			before := len(mailtest.Mailbox(t, srv.Store(), tt.account, "INBOX"))
			if err := send(t, addr, "someone@remote.test", []string{tt.rcpt}, msg, nil); err != nil {
				t.Fatalf("send: %v", err)
			}
			box := mailtest.Mailbox(t, srv.Store(), tt.account, "INBOX")
			if len(box) != before+1 {
				t.Fatalf("INBOX of %s has %d messages, want %d", tt.account, len(box), before+1)
			}
			added, original := stripAdded(t, box[len(box)-1])
			if !bytes.Equal(original, msg) {
				t.Fatalf("stored body differs:\n got %q\nwant %q", original, msg)
			}
			for _, want := range []string{"Return-Path: <someone@remote.test>\r\n", "Delivered-To: " + tt.delivTo + "\r\n",
				"Received: from client.remote.test ([127.0.0.1])", "by mail.example.test (mailstead) with ESMTPS id "} {
				if !strings.Contains(added, want) {
					t.Errorf("added headers lack %q:\n%s", want, added)
				}
			}
		})
	}
}

func TestReceiveSeveralRecipientsStoresOnce(t *testing.T) {
	srv := receiveFixture(t)
	msg := []byte("From: x@remote.test\r\nSubject: to many\r\n\r\nhi\r\n")
	if err := send(t, srv.Opts.Addr(25), "x@remote.test", []string{"alice@example.test", "team@example.test", "bob@example.test"}, msg, nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		if n := len(mailtest.Mailbox(t, srv.Store(), a, "INBOX")); n != 1 {
			t.Errorf("%s has %d messages, want exactly 1 (alias and direct recipient collapse)", a, n)
		}
	}
	if n := countRows(t, srv, "blobs"); n != 1 {
		t.Errorf("%d bodies stored, want 1 for all recipients", n)
	}
}

func countRows(t *testing.T, srv *mailtest.Server, table string) int {
	t.Helper()
	n, err := srv.Store().CountRows(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReceiveEightBitUTF8AndLarge(t *testing.T) {
	srv := receiveFixture(t)
	addr := srv.Opts.Addr(25)
	eight := []byte("From: x@remote.test\r\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln — ✓\r\n")
	if err := send(t, addr, "x@remote.test", []string{"alice@example.test"}, eight, &gosmtp.MailOptions{Body: gosmtp.Body8BitMIME}); err != nil {
		t.Fatalf("8-bit: %v", err)
	}
	if err := send(t, addr, "jürgen@remote.test", []string{"carol@bücher.test"}, eight, &gosmtp.MailOptions{UTF8: true}); err != nil {
		t.Fatalf("SMTPUTF8: %v", err)
	}
	// Without SMTPUTF8 a non-ASCII address is refused (RFC 6531 §3.4).
	err := send(t, addr, "jürgen@remote.test", []string{"alice@example.test"}, eight, nil)
	if code := replyCode(err); code != 553 {
		t.Fatalf("non-ASCII sender without SMTPUTF8: %v, want 553", err)
	}
	large := bigMessage(20 << 20)
	if err := send(t, addr, "x@remote.test", []string{"bob@example.test"}, large, nil); err != nil {
		t.Fatalf("20 MiB: %v", err)
	}
	for _, c := range []struct {
		account string
		want    []byte
	}{{"alice@example.test", eight}, {"carol@bücher.test", eight}, {"bob@example.test", large}} {
		box := mailtest.Mailbox(t, srv.Store(), c.account, "INBOX")
		if len(box) != 1 {
			t.Fatalf("%s: %d messages", c.account, len(box))
		}
		if _, orig := stripAdded(t, box[0]); !bytes.Equal(orig, c.want) {
			t.Fatalf("%s: stored message differs (len %d, want %d)", c.account, len(orig), len(c.want))
		}
	}
}

func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: x@remote.test\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func replyCode(err error) int {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// conversation is a raw SMTP client for the cases a well-behaved library will not produce.
type conversation struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *conversation {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cv := &conversation{t: t, c: c, r: bufio.NewReader(c)}
	cv.expect("220 ")
	return cv
}

func (cv *conversation) send(s string) {
	cv.t.Helper()
	if _, err := cv.c.Write([]byte(s)); err != nil {
		cv.t.Fatalf("write %q: %v", s, err)
	}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (cv *conversation) reply() string {
	cv.t.Helper()
	for {
		line, err := cv.r.ReadString('\n')
		if err != nil {
			cv.t.Fatalf("read reply: %v (got %q)", err, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (cv *conversation) expect(prefix string) string {
	cv.t.Helper()
	got := cv.reply()
	if !strings.HasPrefix(got, prefix) {
		cv.t.Fatalf("reply %q, want prefix %q", got, prefix)
	}
	return got
}

func (cv *conversation) cmd(line, wantPrefix string) string {
	cv.t.Helper()
	cv.send(line + "\r\n")
	return cv.expect(wantPrefix)
}

func TestReceiveRejections(t *testing.T) {
	srv := receiveFixture(t)
	addr := srv.Opts.Addr(25)
	cv := dial(t, addr)
	cv.cmd("MAIL FROM:<x@remote.test>", "503 5.5.1")
	cv.cmd("EHLO client.remote.test", "250 ")
	cv.cmd("RCPT TO:<alice@example.test>", "503 5.5.1")
	cv.cmd("DATA", "503 5.5.1")
	cv.cmd("MAIL FROM:<x@remote.test> SIZE=999999999", "552 5.3.4")
	cv.cmd("MAIL FROM x@remote.test", "501 5.5.2")
	cv.cmd("FROB", "500 5.5.1") // RFC 5321 §4.2.4: command unrecognized
	cv.cmd("MAIL FROM:<x@remote.test>", "250 ")
	cv.cmd("DATA", "503 5.5.1")
	relayTricks := []struct{ rcpt, want string }{
		{"<bob@elsewhere.test>", "550 5.7.1"},
		{"<@example.test:bob@elsewhere.test>", "550 5.7.1"},
		{"<bob%elsewhere.test@example.test>", "550 5.1.1"},
		{"<\"bob@elsewhere.test\"@example.test>", "553 5.1.3"},
		{"<bob@elsewhere.test.>", "553 5.1.3"},
		{"<alice@example.test.>", "553 5.1.3"},
		{"<bob@ELSEWHERE.TEST>", "550 5.7.1"},
		{"<bob@[127.0.0.1]>", "553 5.1.3"},
		{"<bob@xn--mnchen-3ya.test>", "550 5.7.1"},
		{"<nobody@example.test>", "550 5.1.1"},
		{"<alice@example.test", "501 5.5.2"},
	}
	for _, rt := range relayTricks {
		cv.cmd("RCPT TO:"+rt.rcpt, rt.want)
	}
	cv.cmd("QUIT", "221 ")

	// Too many recipients: the 101st gets 452 4.5.3 (RFC 5321 §4.5.3.1.10).
	cv = dial(t, addr)
	cv.cmd("EHLO client.remote.test", "250 ")
	cv.cmd("MAIL FROM:<x@remote.test>", "250 ")
	for i := 0; i < 100; i++ {
		cv.send("RCPT TO:<alice+" + fmt.Sprint(i) + "@example.test>\r\n")
	}
	for i := 0; i < 100; i++ {
		cv.expect("250 ")
	}
	cv.cmd("RCPT TO:<alice+x@example.test>", "452 4.5.3")

	// An oversized DATA is read to its end, then refused with 552, and the session goes on.
	cv = dial(t, addr)
	cv.cmd("EHLO client.remote.test", "250 ")
	cv.cmd("MAIL FROM:<x@remote.test>", "250 ")
	cv.cmd("RCPT TO:<alice@example.test>", "250 ")
	cv.cmd("DATA", "354 ")
	big := bigMessage(26 << 20)
	cv.send(string(big) + ".\r\n")
	cv.expect("552 5.3.4")
	cv.cmd("NOOP", "250 ")
	if n := len(mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")); n != 0 {
		t.Fatalf("rejected messages were stored: %d", n)
	}
}

func TestReceiveSmugglingAttemptsStayInOneMessage(t *testing.T) {
	srv := receiveFixture(t)
	for i, end := range []string{"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r"} {
		cv := dial(t, srv.Opts.Addr(25))
		cv.cmd("EHLO client.remote.test", "250 ")
		cv.cmd("MAIL FROM:<x@remote.test>", "250 ")
		cv.cmd("RCPT TO:<alice@example.test>", "250 ")
		cv.cmd("DATA", "354 ")
		cv.send("From: x@remote.test\r\nSubject: smuggle " + fmt.Sprint(i) + "\r\n\r\nhello" + end +
			"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
		cv.expect("250 ")
		cv.cmd("QUIT", "221 ")
	}
	alice := mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")
	if len(alice) != 5 {
		t.Fatalf("alice has %d messages, want 5", len(alice))
	}
	if bob := mailtest.Mailbox(t, srv.Store(), "bob@example.test", "INBOX"); len(bob) != 0 {
		t.Fatalf("a smuggled message reached bob: %q", bob[0])
	}
	for _, m := range alice {
		if bytes.Contains(bytes.ReplaceAll(m, []byte("\r\n"), nil), []byte("\n")) ||
			bytes.Contains(bytes.ReplaceAll(m, []byte("\r\n"), nil), []byte("\r")) {
			t.Fatalf("bare CR or LF stored: %q", m)
		}
		if !bytes.Contains(m, []byte("smuggled")) {
			t.Fatalf("message lost its tail: %q", m)
		}
	}
}

func TestReceiveBDAT(t *testing.T) {
	srv := receiveFixture(t)
	cv := dial(t, srv.Opts.Addr(25))
	cv.cmd("EHLO client.remote.test", "250 ")
	cv.cmd("MAIL FROM:<x@remote.test>", "250 ")
	cv.cmd("RCPT TO:<alice@example.test>", "250 ")
	part1 := "From: x@remote.test\r\nSubject: chunks\r\n\r\nfirst part\r\n.not stuffed in BDAT\r\n"
	part2 := "second part\r\n"
	cv.send(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	cv.expect("250 ")
	cv.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	cv.expect("250 ")
	box := mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")
	if len(box) != 1 {
		t.Fatalf("%d messages", len(box))
	}
	if _, orig := stripAdded(t, box[0]); string(orig) != part1+part2 {
		t.Fatalf("stored %q", orig)
	}
}

func TestReceiveConnectionLimitPerIP(t *testing.T) {
	srv := receiveFixture(t)
	var conns []*conversation
	for i := 0; i < 30; i++ {
		conns = append(conns, dial(t, srv.Opts.Addr(25)))
	}
	c, err := net.Dial("tcp", srv.Opts.Addr(25))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "421 4.7.0") {
		t.Fatalf("31st connection got %q, want 421 4.7.0", line)
	}
	conns[0].cmd("QUIT", "221 ")
	mailtest.WaitFor(t, 5*time.Second, "a free connection slot", func() bool {
		c, err := net.Dial("tcp", srv.Opts.Addr(25))
		if err != nil {
			return false
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(line, "220 ")
	})
}

func TestReceiveConcurrentSessions(t *testing.T) {
	srv := receiveFixture(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				msg := fmt.Sprintf("From: x@remote.test\r\nSubject: %d-%d\r\n\r\nbody\r\n", i, j)
				errs <- send(t, srv.Opts.Addr(25), "x@remote.test", []string{"team@example.test"}, []byte(msg), nil)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		if n := len(mailtest.Mailbox(t, srv.Store(), a, "INBOX")); n != 100 {
			t.Fatalf("%s has %d, want 100", a, n)
		}
	}
}
