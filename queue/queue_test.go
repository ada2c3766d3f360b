package queue

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// A message for two recipients at one domain goes in one STARTTLS transaction, introduced with our
// own hostname, and leaves the queue.
func TestDeliverOverSTARTTLS(t *testing.T) {
	e := newEnv(t, "127.0.0.21")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.21")
	cert := e.ca.issue(t, "mx.b.test")
	far := startFarSide(t, "127.0.0.21", 25+e.offset, &cert)
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test", "carol@b.test")
	e.waitFor("delivery", func() bool { return e.queueLen() == 0 })
	msgs := far.messages()
	if len(msgs) != 1 {
		t.Fatalf("far side got %d transactions, want 1", len(msgs))
	}
	m := msgs[0]
	if m.from != "alice@a.test" || strings.Join(m.rcpts, ",") != "bob@b.test,carol@b.test" || !m.tls || m.helo != "mail.a.test" {
		t.Fatalf("far side saw from=%q rcpts=%v tls=%v helo=%q", m.from, m.rcpts, m.tls, m.helo)
	}
	if !strings.Contains(string(m.data), "Hi Bob.") {
		t.Fatalf("body not delivered: %q", m.data)
	}
	if !strings.Contains(e.logs.String(), "msg=delivered") {
		t.Fatalf("no delivered log line:\n%s", e.logs.String())
	}
}

// The far side is down: the message is deferred with the reason, then delivered once it is up.
func TestFarSideDownThenUp(t *testing.T) {
	e := newEnv(t, "127.0.0.22")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.22")
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test")
	e.waitFor("a deferral", func() bool {
		l, _ := e.st.QueueList(context.Background())
		// The row is committed before the attempt logs its outcome: wait for both.
		return len(l) == 1 && l[0].Attempts >= 1 && strings.Contains(l[0].LastError, "connecting to mx.b.test") &&
			strings.Contains(e.logs.String(), "msg=deferred")
	})
	far := startFarSide(t, "127.0.0.22", 25+e.offset, nil)
	e.waitFor("delivery after the far side came up", func() bool { return e.queueLen() == 0 })
	if n := len(far.messages()); n != 1 {
		t.Fatalf("far side got %d messages, want 1", n)
	}
	if len(e.inbox()) != 0 {
		t.Fatal("a deferral sent the sender a notice before the delay-notice age")
	}
}

// A 550 from the far side bounces: alice gets an RFC 3464 report naming bob and the reason.
func TestPermanentFailureBounces(t *testing.T) {
	e := newEnv(t, "127.0.0.23")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.23")
	far := startFarSide(t, "127.0.0.23", 25+e.offset, nil)
	far.rcptErr = func(string) error {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no mailbox bob here"}
	}
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test")
	// The bounce is stored before its entry is removed: wait for the attempt to finish too.
	e.waitFor("a bounce in alice's INBOX", func() bool { return len(e.inbox()) == 1 && e.quiet() })
	dsn := string(e.inbox()[0])
	for _, want := range []string{
		"Return-Path: <>", "Content-Type: multipart/report; report-type=delivery-status",
		"Content-Type: message/delivery-status", "Final-Recipient: rfc822; bob@b.test", "Action: failed",
		"Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no mailbox bob here", "Remote-MTA: dns; mx.b.test",
		"Content-Type: text/rfc822-headers", "Subject: hello", "Auto-Submitted: auto-replied",
	} {
		if !strings.Contains(dsn, want) {
			t.Errorf("bounce lacks %q", want)
		}
	}
	if strings.Contains(dsn, "Hi Bob.") {
		t.Error("bounce carries the original body; only its header belongs there")
	}
	if t.Failed() {
		t.Logf("bounce:\n%s", dsn)
	}
	if e.queueLen() != 0 {
		t.Fatal("bounced entry still queued")
	}
	if !strings.Contains(e.logs.String(), "msg=bounced") {
		t.Fatal("no bounced log line")
	}
}

// Per-recipient results: bob 250, carol 550, dave 451. Only carol bounces; dave stays queued.
func TestMixedRecipientResults(t *testing.T) {
	e := newEnv(t, "127.0.0.24")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.24")
	far := startFarSide(t, "127.0.0.24", 25+e.offset, nil)
	far.rcptErr = func(rcpt string) error {
		switch rcpt {
		case "carol@b.test":
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "carol unknown"}
		case "dave@b.test":
			return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 2, 1}, Message: "dave busy"}
		}
		return nil
	}
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test", "carol@b.test", "dave@b.test")
	e.waitFor("the bounce for carol", func() bool { return len(e.inbox()) == 1 })
	e.waitFor("dave deferred", func() bool {
		l, _ := e.st.QueueList(context.Background())
		return len(l) == 1 && l[0].Rcpt == "dave@b.test" && l[0].Attempts >= 1
	})
	dsn := string(e.inbox()[0])
	if !strings.Contains(dsn, "Final-Recipient: rfc822; carol@b.test") || strings.Contains(dsn, "rfc822; bob@") || strings.Contains(dsn, "rfc822; dave@") {
		t.Fatalf("bounce should name carol only:\n%s", dsn)
	}
	msgs := far.messages()
	if len(msgs) == 0 || strings.Join(msgs[0].rcpts, ",") != "bob@b.test" {
		t.Fatalf("far side transactions: %+v", msgs)
	}
	for _, m := range msgs[1:] {
		for _, r := range m.rcpts {
			if r == "bob@b.test" {
				t.Fatal("bob got the message twice")
			}
		}
	}
}

// A null MX (RFC 7505) bounces at once, without a connection.
func TestNullMXBounces(t *testing.T) {
	e := newEnv(t, "127.0.0.25")
	e.zone.Add("b.test. 300 IN MX 0 .")
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test")
	e.waitFor("the bounce", func() bool { return len(e.inbox()) == 1 })
	dsn := string(e.inbox()[0])
	if !strings.Contains(dsn, "Status: 5.1.10") || !strings.Contains(dsn, "null MX") {
		t.Fatalf("bounce does not give the null MX reason:\n%s", dsn)
	}
}

// A domain that does not exist bounces; a domain without MX is tried at its address.
func TestNoSuchDomainAndImplicitMX(t *testing.T) {
	e := newEnv(t, "127.0.0.26")
	e.zone.Add("c.test. 300 IN A 127.0.0.26")
	far := startFarSide(t, "127.0.0.26", 25+e.offset, nil)
	e.start()
	e.submit("alice@a.test", testMsg, "bob@nowhere.test")
	e.submit("alice@a.test", testMsg, "carol@c.test")
	e.waitFor("both handled", func() bool { return e.queueLen() == 0 })
	if len(far.messages()) != 1 {
		t.Fatal("the implicit MX (the domain's A record) got no message")
	}
	in := e.inbox()
	if len(in) != 1 || !strings.Contains(string(in[0]), "Status: 5.1.2") {
		t.Fatalf("want one 5.1.2 bounce for nowhere.test, got %d messages", len(in))
	}
}

// The first MX refuses connections, the first reachable one answers 421: the third gets it.
func TestNextMXOnFailure(t *testing.T) {
	e := newEnv(t, "127.0.0.27", "127.0.0.28", "127.0.0.29")
	e.zone.Add("b.test. 300 IN MX 10 mx1.b.test.", "b.test. 300 IN MX 20 mx2.b.test.", "b.test. 300 IN MX 30 mx3.b.test.",
		"mx1.b.test. 300 IN A 127.0.0.27", "mx2.b.test. 300 IN A 127.0.0.28", "mx3.b.test. 300 IN A 127.0.0.29")
	busy := startFarSide(t, "127.0.0.28", 25+e.offset, nil)
	busy.rcptErr = func(string) error {
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try elsewhere"}
	}
	good := startFarSide(t, "127.0.0.29", 25+e.offset, nil)
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test")
	e.waitFor("delivery", func() bool { return e.queueLen() == 0 })
	if len(good.messages()) != 1 || len(busy.messages()) != 0 {
		t.Fatalf("mx2 got %d, mx3 got %d; want 0 and 1", len(busy.messages()), len(good.messages()))
	}
}

// Mail from the null sender (a bounce) that fails is dropped, never bounced again.
func TestNoBounceToNullSender(t *testing.T) {
	e := newEnv(t, "127.0.0.30")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.30")
	far := startFarSide(t, "127.0.0.30", 25+e.offset, nil)
	far.rcptErr = func(string) error {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no"}
	}
	e.start()
	e.submit("", testMsg, "bob@b.test")
	e.waitFor("the entry to go", func() bool { return strings.Contains(e.logs.String(), "msg=bounced") && e.quiet() })
	if e.queueLen() != 0 || len(e.inbox()) != 0 {
		t.Fatal("a failure of a null-sender message produced a bounce")
	}
}

// After the delay-notice age the sender is told once; after the maximum age the message bounces.
func TestDelayNoticeThenExpiry(t *testing.T) {
	e := newEnv(t, "127.0.0.31")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.31")
	ctx := context.Background()
	e.st.SetSetting(ctx, "queue.delay_notice", "1s")
	e.st.SetSetting(ctx, "queue.max_age", "5s")
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test")
	e.waitFor("the expiry bounce", func() bool { return e.queueLen() == 0 && len(e.inbox()) >= 2 })
	in := e.inbox()
	if len(in) != 2 {
		t.Fatalf("alice got %d notices, want a delay notice and a bounce", len(in))
	}
	if d := string(in[0]); !strings.Contains(d, "Action: delayed") || !strings.Contains(d, "Will-Retry-Until:") || !strings.Contains(d, "Status: 4.4.1") {
		t.Fatalf("first notice is not a delay notice:\n%s", d)
	}
	if d := string(in[1]); !strings.Contains(d, "Action: failed") || !strings.Contains(d, "Status: 5.4.7") || !strings.Contains(d, "gave up after") {
		t.Fatalf("second notice is not an expiry bounce:\n%s", d)
	}
}

// REQUIRETLS mail is never sent to a server without TLS: it bounces with 5.7.30.
func TestRequireTLSWithoutTLSBounces(t *testing.T) {
	e := newEnv(t, "127.0.0.32")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.32")
	far := startFarSide(t, "127.0.0.32", 25+e.offset, nil)
	e.start()
	d := deliveryOf("alice@a.test", testMsg, "bob@b.test")
	d.Remote[0].RequireTLS = true
	if _, err := e.st.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	e.q.Kick()
	e.waitFor("the bounce", func() bool { return len(e.inbox()) == 1 })
	if !strings.Contains(string(e.inbox()[0]), "Status: 5.7.30") {
		t.Fatalf("bounce:\n%s", e.inbox()[0])
	}
	far.mu.Lock()
	defer far.mu.Unlock()
	if far.mails != 0 {
		t.Fatal("REQUIRETLS mail was offered to a server without TLS")
	}
}

// Dev mode keeps mail on the machine and says why.
func TestDevModeSendsNothing(t *testing.T) {
	e := newEnv(t, "127.0.0.33")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.33")
	far := startFarSide(t, "127.0.0.33", 25+e.offset, nil)
	e.start(func(c *Config) { c.DevMode = true })
	e.submit("alice@a.test", testMsg, "bob@b.test")
	e.waitFor("a deferral", func() bool {
		l, _ := e.st.QueueList(context.Background())
		return len(l) == 1 && strings.Contains(l[0].LastError, "dev mode")
	})
	if len(far.messages()) != 0 {
		t.Fatal("dev mode sent mail")
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{1, 5 * time.Minute}, {2, 10 * time.Minute}, {3, 20 * time.Minute}, {6, 160 * time.Minute}, {7, 4 * time.Hour}, {50, 4 * time.Hour}} {
		if got := backoff(c.n, 5*time.Minute, 4*time.Hour); got != c.want {
			t.Errorf("backoff(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}

func TestReplyEnhancedCode(t *testing.T) {
	for _, c := range []struct {
		r    reply
		want string
	}{
		{reply{550, "5.1.1 no such user"}, "5.1.1"},
		{reply{550, "no such user"}, "5.0.0"},
		{reply{451, "4.7.1 greylisted"}, "4.7.1"},
		{reply{451, "5.7.1 mismatched class"}, "4.0.0"},
	} {
		if got := c.r.enhanced(); got != c.want {
			t.Errorf("%v: enhanced = %s, want %s", c.r, got, c.want)
		}
	}
}

// A bounce for a remote sender is queued from the null sender; when it fails in turn it is
// dropped, so two servers can never bounce a message back and forth.
func TestBounceToRemoteSenderIsQueuedFromNullSender(t *testing.T) {
	e := newEnv(t, "127.0.0.34")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.34")
	far := startFarSide(t, "127.0.0.34", 25+e.offset, nil)
	far.rcptErr = func(rcpt string) error {
		if rcpt == "bob@b.test" {
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no bob"}
		}
		return nil
	}
	e.start()
	e.submit("carol@b.test", testMsg, "bob@b.test") // forwarded mail: the sender is not ours
	e.waitFor("the bounce to reach carol", func() bool { return len(far.messages()) == 1 })
	m := far.messages()[0]
	if m.from != "" || len(m.rcpts) != 1 || m.rcpts[0] != "carol@b.test" || !strings.Contains(string(m.data), "Final-Recipient: rfc822; bob@b.test") {
		t.Fatalf("bounce sent as from=%q to=%v:\n%s", m.from, m.rcpts, m.data)
	}
	e.waitFor("the queue to empty", func() bool { return e.queueLen() == 0 })
}

// 8-bit mail is never sent unconverted to a server without 8BITMIME: it bounces, saying why.
func TestEightBitToServerWithout8BITMIME(t *testing.T) {
	e := newEnv(t, "127.0.0.35")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.35")
	far := startRawFar(t, "127.0.0.35", 25+e.offset, []string{"PIPELINING", "SIZE 1000000"})
	e.start()
	e.submit("alice@a.test", strings.Replace(testMsg, "Hi Bob.", "Grüße, Bob.", 1), "bob@b.test")
	e.waitFor("the bounce", func() bool { return len(e.inbox()) == 1 })
	if d := string(e.inbox()[0]); !strings.Contains(d, "Status: 5.6.3") || !strings.Contains(d, "8BITMIME") {
		t.Fatalf("bounce:\n%s", d)
	}
	for _, c := range far.commands() {
		if strings.HasPrefix(c, "MAIL") {
			t.Fatal("8-bit message offered to a server without 8BITMIME")
		}
	}
}

// A server that does not know EHLO gets HELO with our name, and commands one at a time.
func TestHELOFallbackWithoutPipelining(t *testing.T) {
	e := newEnv(t, "127.0.0.36")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.36")
	far := startRawFar(t, "127.0.0.36", 25+e.offset, nil)
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test", "carol@b.test")
	e.waitFor("delivery", func() bool { return e.queueLen() == 0 })
	got := strings.Join(far.commands(), "|")
	want := "EHLO mail.a.test|HELO mail.a.test|MAIL FROM:<alice@a.test>|RCPT TO:<bob@b.test>|RCPT TO:<carol@b.test>|DATA"
	if got != want {
		t.Fatalf("commands:\n%s\nwant:\n%s", got, want)
	}
}

// With PIPELINING offered, MAIL, RCPT and DATA go out in one write (RFC 2920).
func TestPipelining(t *testing.T) {
	e := newEnv(t, "127.0.0.37")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.37")
	far := startRawFar(t, "127.0.0.37", 25+e.offset, []string{"PIPELINING", "8BITMIME"})
	e.start()
	e.submit("alice@a.test", testMsg, "bob@b.test", "carol@b.test")
	e.waitFor("delivery", func() bool { return e.queueLen() == 0 })
	far.mu.Lock()
	defer far.mu.Unlock()
	if !far.pipelined || len(far.msgs) != 1 {
		t.Fatalf("pipelined=%v, %d messages; commands %v", far.pipelined, len(far.msgs), far.cmds)
	}
}

// A second message to the same host goes over the session of the first (no new handshake); a
// cached session the far side has dropped is noticed (RSET fails) and replaced.
func TestSessionReuse(t *testing.T) {
	e := newEnv(t, "127.0.0.38", "127.0.0.39")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.38",
		"c.test. 300 IN MX 10 mx.c.test.", "mx.c.test. 300 IN A 127.0.0.39")
	cert := e.ca.issue(t, "mx.b.test")
	far := startFarSide(t, "127.0.0.38", 25+e.offset, &cert)
	dropping := startRawFar(t, "127.0.0.39", 25+e.offset, []string{"PIPELINING", "8BITMIME"})
	dropping.hangUpAfterData = true
	e.start()
	for i := range 3 {
		e.submit("alice@a.test", testMsg, "bob@b.test", "carol@c.test")
		e.waitFor("delivery", func() bool { return e.queueLen() == 0 })
		if n := len(far.messages()); n != i+1 {
			t.Fatalf("far side has %d messages, want %d", n, i+1)
		}
	}
	far.mu.Lock()
	conns := far.conns
	far.mu.Unlock()
	if conns != 1 {
		t.Fatalf("3 messages took %d connections, want 1", conns)
	}
	dropping.mu.Lock()
	defer dropping.mu.Unlock()
	if len(dropping.msgs) != 3 || dropping.conns != 3 {
		t.Fatalf("dropping server: %d messages over %d connections, want 3 and 3", len(dropping.msgs), dropping.conns)
	}
}

// No more than queue.per_destination deliveries run at once to one domain: with slow replies and
// sessions kept for reuse, eight messages take at most two connections.
func TestPerDestinationConcurrency(t *testing.T) {
	e := newEnv(t, "127.0.0.46")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.46")
	far := startFarSide(t, "127.0.0.46", 25+e.offset, nil)
	far.rcptErr = func(string) error { time.Sleep(50 * time.Millisecond); return nil }
	e.st.SetSetting(context.Background(), "queue.per_destination", "2")
	e.start()
	for i := range 8 {
		e.submit("alice@a.test", strings.Replace(testMsg, "m1@", fmt.Sprintf("m%d@", i+10), 1), "bob@b.test")
	}
	e.waitFor("all 8", func() bool { return e.queueLen() == 0 })
	if n := len(far.messages()); n != 8 {
		t.Fatalf("far side got %d messages", n)
	}
	far.mu.Lock()
	conns := far.conns
	far.mu.Unlock()
	if conns > 2 {
		t.Fatalf("%d connections to one domain with per_destination 2", conns)
	}
}

// MX hosts come in preference order, equal preferences in random order (RFC 5321 §5.1).
func TestMXOrder(t *testing.T) {
	e := newEnv(t)
	e.zone.Add("b.test. 300 IN MX 20 c.b.test.", "b.test. 300 IN MX 10 a.b.test.", "b.test. 300 IN MX 10 b.b.test.",
		"b.test. 300 IN MX 30 d.b.test.")
	e.start()
	firsts := map[string]int{}
	for range 200 {
		hosts, fail := e.q.mxHosts(context.Background(), "b.test")
		if fail != nil || len(hosts) != 4 || hosts[2] != "c.b.test" || hosts[3] != "d.b.test" {
			t.Fatalf("order %v, %v", hosts, fail)
		}
		firsts[hosts[0]]++
	}
	if firsts["a.b.test"] == 0 || firsts["b.b.test"] == 0 {
		t.Fatalf("equal preferences not shuffled: %v", firsts)
	}
}

// TestRetryWakesQueue: an entry made due by the store (what `mailstead queue retry`, the admin
// page and the API all do) is attempted at once, although its own next attempt is an hour away:
// the queue wakes on the store's QueueDue event, not on a caller remembering to kick it.
func TestRetryWakesQueue(t *testing.T) {
	e := newEnv(t, "127.0.0.61")
	ctx := context.Background()
	for k, v := range map[string]string{"queue.retry_initial": "1h", "queue.retry_max": "2h"} {
		if err := e.st.SetSetting(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.61")
	e.start()
	if _, err := e.st.Deliver(ctx, deliveryOf("alice@a.test", testMsg, "bob@b.test")); err != nil {
		t.Fatal(err)
	}
	// No Kick: the committed row itself wakes the queue, which finds the far side down.
	e.waitFor("a deferral an hour away", func() bool {
		l, _ := e.st.QueueList(ctx)
		return len(l) == 1 && l[0].Attempts == 1 && time.Until(l[0].NextAttempt) > 30*time.Minute
	})
	far := startFarSide(t, "127.0.0.61", 25+e.offset, nil)
	if n, err := e.st.QueueRetry(ctx, 0); err != nil || n != 1 {
		t.Fatalf("QueueRetry = %d, %v", n, err)
	}
	e.waitFor("the delivery after the retry", func() bool { return len(far.messages()) == 1 })
}
