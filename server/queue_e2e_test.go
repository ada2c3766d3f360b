package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"mailstead/dns"
	"mailstead/mailauth"
	"mailstead/mailtest"
	"mailstead/server"
	"mailstead/store"
)

// Two instances, A (a.test) and B (b.test), with the same port offset and one fake DNS zone.
// Their addresses are random in 127/8 for each run of the tests, so that packages tested in
// parallel (and -race runs next to plain ones) never collide on an address and port.
var ipA, ipB = twoLoopbackIPs()

func twoLoopbackIPs() (string, string) {
	a, b := mailtest.RandomLoopbackIP(), mailtest.RandomLoopbackIP()
	for a == b {
		b = mailtest.RandomLoopbackIP()
	}
	return a, b
}

// randomOffset is a port offset for a test of its own. The highest standard port a server
// listens on is the metrics page's 9025, so offsets stay below 50000 to keep every port valid.
func randomOffset() int {
	n, _ := rand.Int(rand.Reader, big.NewInt(30000))
	return mailtest.DefaultPortOffset + int(n.Int64())
}

// fastQueue makes retries come quickly in tests.
var fastQueue = map[string]string{"queue.retry_initial": "1s", "queue.retry_max": "2s", "queue.timeout": "20s"}

type pair struct {
	zone   *mailtest.DNSZone
	offset int
	a      *mailtest.Server
	optsB  mailtest.Options
	b      *mailtest.Server
}

// newPair publishes a.test and b.test in a fake zone and starts A; B is started by startB, so tests
// can have the far side down first.
func newPair(t testing.TB, settingsA map[string]string) *pair {
	t.Helper()
	p := &pair{zone: mailtest.NewDNSZone(t), offset: randomOffset()}
	p.zone.Add(
		"a.test. 300 IN MX 10 mail.a.test.", "mail.a.test. 300 IN A "+ipA,
		"b.test. 300 IN MX 10 mail.b.test.", "mail.b.test. 300 IN A "+ipB,
		`a.test. 300 IN TXT "v=spf1 ip4:`+ipA+` -all"`, `b.test. 300 IN TXT "v=spf1 ip4:`+ipB+` -all"`,
		`_dmarc.a.test. 300 IN TXT "v=DMARC1; p=reject"`, `_dmarc.b.test. 300 IN TXT "v=DMARC1; p=reject"`,
	)
	settings := map[string]string{}
	for k, v := range fastQueue {
		settings[k] = v
	}
	for k, v := range settingsA {
		settings[k] = v
	}
	p.a = mailtest.Start(t, mailtest.Options{IP: ipA, PortOffset: p.offset, DNS: p.zone.Addr(), Domain: "a.test",
		Accounts: map[string]string{"alice@a.test": "alice-pw"}, Settings: settings})
	p.publishDKIM(t, p.a.Store(), "a.test")
	p.optsB = mailtest.Prepare(t, mailtest.Options{IP: ipB, PortOffset: p.offset, DNS: p.zone.Addr(), Domain: "b.test",
		Accounts: map[string]string{"bob@b.test": "bob-pw"}, Settings: fastQueue})
	return p
}

func (p *pair) startB(t testing.TB) {
	t.Helper()
	p.b = mailtest.Run(t, p.optsB)
	p.publishDKIM(t, p.b.Store(), "b.test")
}

// publishDKIM puts the domain's keys in the zone, from the same lines `dns-records` prints.
func (p *pair) publishDKIM(t testing.TB, st *store.Store, domain string) {
	t.Helper()
	keys, err := mailauth.Keys(context.Background(), st, domain)
	if err != nil || len(keys) != 2 {
		t.Fatalf("dkim keys of %s: %v, %v", domain, keys, err)
	}
	for _, k := range keys {
		p.zone.AddTXT(k.Selector+"._domainkey."+domain, k.TXT())
	}
}

// submit sends msg as user over submission (587 with STARTTLS, or 465).
func submit(t *testing.T, srv *mailtest.Server, implicit bool, user, pass, from string, to []string, msg string) error {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true}
	var c *gosmtp.Client
	var err error
	if implicit {
		c, err = gosmtp.DialTLS(srv.Opts.Addr(465), cfg)
	} else {
		c, err = gosmtp.DialStartTLS(srv.Opts.Addr(587), cfg)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("phone.a.test"); err != nil {
		return err
	}
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
			return err
		}
	}
	return c.SendMail(from, to, strings.NewReader(strings.ReplaceAll(msg, "\n", "\r\n")))
}

func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func queueOf(t testing.TB, st *store.Store) []store.QueueEntry {
	t.Helper()
	q, err := st.QueueList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return q
}

const aliceToBob = `From: Alice <alice@a.test>
To: Bob <bob@b.test>
Subject: lunch?
Message-ID: <lunch-1@a.test>

Shall we have lunch tomorrow?
`

// alice@a.test submits to bob@b.test: A signs and relays over STARTTLS; bob's copy at B carries
// both DKIM signatures, which verify, and B's own checks say dkim=pass spf=pass dmarc=pass.
func TestRelayAToBWithDKIM(t *testing.T) {
	p := newPair(t, nil)
	p.startB(t)
	if err := submit(t, p.a, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test"}, aliceToBob); err != nil {
		t.Fatal(err)
	}
	var got []byte
	waitFor(t, "bob's copy at B", 30*time.Second, func() bool {
		box := mailtest.Mailbox(t, p.b.Store(), "bob@b.test", "INBOX")
		if len(box) == 1 {
			got = box[0]
		}
		return len(box) == 1
	})
	// B stores before it answers 250 and A completes the row after that answer: wait for both.
	waitFor(t, "A's queue to empty", 30*time.Second, func() bool { return len(queueOf(t, p.a.Store())) == 0 })
	if !bytes.Contains(got, []byte("Shall we have lunch")) || !bytes.Contains(got, []byte("by mail.b.test")) {
		t.Fatalf("bob's copy:\n%s", got)
	}
	if !regexp.MustCompile(`with ESMTPS id`).Match(got) {
		t.Errorf("A did not relay over TLS:\n%s", got)
	}
	resolver := dns.New(p.zone.Addr())
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(got), &dkim.VerifyOptions{LookupTXT: resolver.NetCompat().TXTFunc(context.Background())})
	if err != nil || len(vs) != 2 {
		t.Fatalf("dkim verify: %d signatures, %v", len(vs), err)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "a.test" {
			t.Errorf("signature by %s: %v", v.Domain, v.Err)
		}
	}
	// B's own checks of the relayed message (issue 6): every mechanism passes.
	for _, want := range []string{"Authentication-Results: mail.b.test;", "dkim=pass", "spf=pass", "dmarc=pass"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("bob's copy lacks %q:\n%s", want, got)
		}
	}
	if os.Getenv("MAILSTEAD_INTEROP") != "" {
		dkimpyVerify(t, got, p.a.Store())
	}
}

// dkimpyVerify checks every signature with dkimpy (Debian python3-dkim; python3-nacl for Ed25519),
// its key lookups answered from our records rather than any DNS server.
func dkimpyVerify(t *testing.T, msg []byte, st *store.Store) {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("interop: %s missing (apt-get install python3 python3-dkim python3-nacl)", py)
	}
	keys, err := mailauth.Keys(context.Background(), st, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]string{}
	for _, k := range keys {
		recs[k.Selector+"._domainkey.a.test"] = k.TXT()
	}
	dir := t.TempDir()
	b, _ := json.Marshal(recs)
	os.WriteFile(filepath.Join(dir, "keys.json"), b, 0o600)
	os.WriteFile(filepath.Join(dir, "msg.eml"), msg, 0o600)
	script := `
import json, sys, dkim
recs = json.load(open(sys.argv[1]))
msg = open(sys.argv[2], "rb").read()
def txt(name, timeout=5):
    return recs.get(name.decode().rstrip("."), "").encode()
d = dkim.DKIM(msg)
n = sum(1 for l in msg.split(b"\r\n") if l.lower().startswith(b"dkim-signature:"))
ok = [d.verify(idx=i, dnsfunc=txt) for i in range(n)]
print(n, ok)
sys.exit(0 if n == 2 and all(ok) else 1)
`
	out, err := exec.Command(py, "-c", script, filepath.Join(dir, "keys.json"), filepath.Join(dir, "msg.eml")).CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy does not verify both signatures: %v\n%s", err, out)
	}
	t.Logf("dkimpy: %s", out)
}

// B is down: A defers with the reason, then delivers once B is up.
func TestRelayDeferredThenDelivered(t *testing.T) {
	p := newPair(t, nil)
	if err := submit(t, p.a, true, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test"}, aliceToBob); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a deferral at A", 30*time.Second, func() bool {
		q := queueOf(t, p.a.Store())
		return len(q) == 1 && q[0].Attempts >= 1 && strings.Contains(q[0].LastError, "mail.b.test")
	})
	p.startB(t)
	waitFor(t, "delivery once B is up", 30*time.Second, func() bool {
		return len(mailtest.Mailbox(t, p.b.Store(), "bob@b.test", "INBOX")) == 1
	})
	waitFor(t, "A's queue to empty", 10*time.Second, func() bool { return len(queueOf(t, p.a.Store())) == 0 })
}

// B refuses one recipient with 550 and takes the other: bob gets the message once, and alice gets
// a DSN naming only the refused recipient and B's reason.
func TestRelayBounceAndMixedResults(t *testing.T) {
	p := newPair(t, nil)
	p.startB(t)
	if err := submit(t, p.a, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test", "nobody@b.test"}, aliceToBob); err != nil {
		t.Fatal(err)
	}
	var dsn string
	waitFor(t, "the DSN in alice's INBOX", 30*time.Second, func() bool {
		box := mailtest.Mailbox(t, p.a.Store(), "alice@a.test", "INBOX")
		if len(box) > 0 {
			dsn = string(box[0])
		}
		return len(box) == 1
	})
	for _, want := range []string{"report-type=delivery-status", "Final-Recipient: rfc822; nobody@b.test", "Action: failed",
		"Status: 5.1.1", "Diagnostic-Code: smtp; 550", "Remote-MTA: dns; mail.b.test", "Subject: lunch?"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q", want)
		}
	}
	if strings.Contains(dsn, "rfc822; bob@b.test") {
		t.Error("DSN names bob, whose copy was accepted")
	}
	if t.Failed() {
		t.Logf("DSN:\n%s", dsn)
	}
	if n := len(mailtest.Mailbox(t, p.b.Store(), "bob@b.test", "INBOX")); n != 1 {
		t.Fatalf("bob has %d copies, want 1", n)
	}
	waitFor(t, "A's queue to empty", 10*time.Second, func() bool { return len(queueOf(t, p.a.Store())) == 0 })
}

// A null MX bounces at once; a dead first MX falls back to the second.
func TestRelayNullMXAndSecondMX(t *testing.T) {
	p := newPair(t, nil)
	p.startB(t)
	p.zone.Add("nomail.test. 300 IN MX 0 .",
		"two.test. 300 IN MX 10 dead.two.test.", "dead.two.test. 300 IN A "+mailtest.RandomLoopbackIP(),
		"two.test. 300 IN MX 20 mail.b.test.")
	if _, err := p.b.Store().AddDomain(context.Background(), "two.test"); err != nil {
		t.Fatal(err)
	}
	if err := p.b.Store().AddAlias(context.Background(), "bob@two.test", []string{"bob@b.test"}); err != nil {
		t.Fatal(err)
	}
	if err := submit(t, p.a, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"x@nomail.test", "bob@two.test"}, aliceToBob); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the null-MX bounce", 30*time.Second, func() bool {
		box := mailtest.Mailbox(t, p.a.Store(), "alice@a.test", "INBOX")
		return len(box) == 1 && bytes.Contains(box[0], []byte("null MX"))
	})
	waitFor(t, "delivery through the second MX", 30*time.Second, func() bool {
		return len(mailtest.Mailbox(t, p.b.Store(), "bob@b.test", "INBOX")) == 1
	})
}

// Spoofing is refused at submission, and nobody relays without logging in: not on 25, 587 or 465.
func TestRelaySpoofingAndOpenRelayRefused(t *testing.T) {
	p := newPair(t, nil)
	err := submit(t, p.a, false, "alice@a.test", "alice-pw", "ceo@a.test", []string{"bob@b.test"}, aliceToBob)
	if replyCode(err) != 553 {
		t.Fatalf("envelope spoofing: %v, want 553", err)
	}
	err = submit(t, p.a, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test"}, strings.Replace(aliceToBob, "alice@a.test", "ceo@a.test", 1))
	if replyCode(err) != 553 {
		t.Fatalf("From: spoofing: %v, want 553", err)
	}
	for _, implicit := range []bool{false, true} {
		if err := submit(t, p.a, implicit, "", "", "alice@a.test", []string{"bob@b.test"}, aliceToBob); replyCode(err) != 530 {
			t.Fatalf("unauthenticated submission (implicit TLS %v): %v, want 530", implicit, err)
		}
	}
	if err := send(t, p.a.Opts.Addr(25), "alice@a.test", []string{"bob@b.test"}, []byte(aliceToBob), nil); replyCode(err) != 550 {
		t.Fatalf("relay through port 25: %v, want 550", err)
	}
	if q := queueOf(t, p.a.Store()); len(q) != 0 {
		t.Fatalf("refused mail was queued: %v", q)
	}
}

// The queue survives kill -9: messages queued while B is down are all delivered after A restarts,
// each exactly once, and a second kill and restart after delivery sends nothing again.
func TestQueueSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a server process")
	}
	zone := mailtest.NewDNSZone(t)
	offset := randomOffset()
	zone.Add("a.test. 300 IN MX 10 mail.a.test.", "mail.a.test. 300 IN A "+ipA,
		"b.test. 300 IN MX 10 mail.b.test.", "mail.b.test. 300 IN A "+ipB)
	optsA := mailtest.Prepare(t, mailtest.Options{IP: ipA, PortOffset: offset, DNS: zone.Addr(), Domain: "a.test",
		Accounts: map[string]string{"alice@a.test": "alice-pw"}, Settings: fastQueue})
	optsB := mailtest.Prepare(t, mailtest.Options{IP: ipB, PortOffset: offset, DNS: zone.Addr(), Domain: "b.test",
		Accounts: map[string]string{"bob@b.test": "bob-pw"}})
	procA := startProcess(t, optsA)
	srvA := &mailtest.Server{Opts: optsA}
	const n = 20
	for i := range n {
		msg := strings.Replace(aliceToBob, "lunch-1@a.test", fmt.Sprintf("kill-%d@a.test", i), 1)
		if err := submit(t, srvA, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test"}, msg); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	procA.Kill()
	b := mailtest.Run(t, optsB)
	procA = startProcess(t, optsA)
	ids := regexp.MustCompile(`Message-ID: <(kill-\d+)@a.test>`)
	count := func() map[string]int {
		seen := map[string]int{}
		for _, m := range mailtest.Mailbox(t, b.Store(), "bob@b.test", "INBOX") {
			if s := ids.FindSubmatch(m); s != nil {
				seen[string(s[1])]++
			}
		}
		return seen
	}
	waitFor(t, "all queued messages at B", 60*time.Second, func() bool { return len(count()) == n })
	// Let A record the last 250s, then kill it again and restart: nothing may go out twice.
	time.Sleep(time.Second)
	procA.Kill()
	procA = startProcess(t, optsA)
	time.Sleep(3 * time.Second)
	procA.Kill()
	for id, c := range count() {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	st, err := store.Open(optsA.Dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if q := queueOf(t, st); len(q) != 0 {
		t.Fatalf("A's queue after delivery: %v", q)
	}
}

// dns-records prints MX, SPF and both DKIM keys as zone-file lines.
func TestDNSRecordsCommand(t *testing.T) {
	p := newPair(t, nil)
	out, err := server.Execute(context.Background(), p.a.Store(), server.Request{Command: "dns-records", Args: []string{"a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a.test. 3600 IN MX 10 mail.a.test.", `a.test. 3600 IN TXT "v=spf1 mx -all"`,
		"ms-rsa._domainkey.a.test. 3600 IN TXT \"v=DKIM1; k=rsa; p=", "ms-ed._domainkey.a.test. 3600 IN TXT \"v=DKIM1; k=ed25519; p="} {
		if !strings.Contains(out, want) {
			t.Errorf("dns-records lacks %q:\n%s", want, out)
		}
	}
}

// startProcess starts A as a child process and waits for its submission port too (StartProcess
// waits for port 25 only, which opens first).
func startProcess(t *testing.T, opts mailtest.Options) *mailtest.Process {
	t.Helper()
	p := mailtest.StartProcess(t, opts)
	waitFor(t, "the submission port", 20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", opts.Addr(587), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// submissionSession is alice's logged-in session on A's port 587, closed when the test ends.
func submissionSession(tb testing.TB, a *mailtest.Server) *gosmtp.Client {
	tb.Helper()
	c, err := gosmtp.DialStartTLS(a.Opts.Addr(587), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", "alice-pw")); err != nil {
		tb.Fatal(err)
	}
	return c
}

// BenchmarkRelayAToB submits 10 KB messages to A over 20 authenticated submission sessions; A
// signs, queues and relays them to B. It reports end-to-end throughput (submitted at A to stored
// at B) and the submit-to-stored latency at B, next to the disk's synced-write rate.
//
//	go test -run '^$' -bench RelayAToB -benchtime 400x ./server/
func BenchmarkRelayAToB(b *testing.B) {
	const sessions = 20
	p := newPair(b, map[string]string{"queue.per_destination": "20"})
	p.startB(b)
	fsyncRate := syncedWritesPerSecond(b, p.optsB.Dir)
	line := strings.Repeat("y", 78) + "\r\n"
	body := strings.Repeat(line, 10*1024/len(line))

	var mu sync.Mutex
	arrived := map[uint32]time.Time{}
	cancel := p.b.Store().Subscribe(func(ev store.Event) {
		if ev.Kind == store.MessageAdded {
			now := time.Now()
			mu.Lock()
			for _, u := range ev.UIDs {
				arrived[u] = now
			}
			mu.Unlock()
		}
	})
	defer cancel()
	submitted := make([]time.Time, b.N)
	work := make(chan int, b.N)
	for i := range b.N {
		work <- i
	}
	close(work)
	// The sessions log in one after another before the clock starts: twenty logins at once
	// would meet the password-hashing budget (454), which is not what this measures.
	clients := make([]*gosmtp.Client, sessions)
	for k := range clients {
		clients[k] = submissionSession(b, p.a)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				msg := fmt.Sprintf("From: alice@a.test\r\nTo: bob@b.test\r\nSubject: bench\r\nX-Seq: %d\r\n\r\n%s", i, body)
				submitted[i] = time.Now()
				if err := c.SendMail("alice@a.test", []string{"bob@b.test"}, strings.NewReader(msg)); err != nil {
					b.Error(err)
					return
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
	waitFor(b, "every message at B", 10*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrived) >= b.N
	})
	elapsed := time.Since(start)
	b.StopTimer()

	// Match each stored message to its submission by X-Seq.
	ctx := context.Background()
	acct, _ := p.b.Store().AccountByAddress(ctx, "bob@b.test")
	mb, _ := p.b.Store().MailboxByName(ctx, acct.ID, "INBOX")
	msgs, _ := p.b.Store().Messages(ctx, mb.ID)
	seq := regexp.MustCompile(`X-Seq: (\d+)`)
	var lat []time.Duration
	for _, m := range msgs {
		data, _ := p.b.Store().MessageData(ctx, m.ID)
		s := seq.FindSubmatch(data)
		if s == nil {
			continue
		}
		var i int
		fmt.Sscan(string(s[1]), &i)
		mu.Lock()
		lat = append(lat, arrived[m.UID].Sub(submitted[i]))
		mu.Unlock()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	n := float64(b.N)
	b.ReportMetric(n/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(fsyncRate, "disk-fsyncs/s")
	b.ReportMetric((n/elapsed.Seconds())/fsyncRate, "msgs-per-fsync-time")
}

// BenchmarkRelayLatency measures submit-to-stored latency at B without a backlog: one session
// submits a 10 KB message, waits until B has stored it, and sends the next.
//
//	go test -run '^$' -bench RelayLatency -benchtime 100x ./server/
func BenchmarkRelayLatency(b *testing.B) {
	p := newPair(b, nil)
	p.startB(b)
	line := strings.Repeat("y", 78) + "\r\n"
	body := strings.Repeat(line, 10*1024/len(line))
	stored := make(chan time.Time, 16)
	cancel := p.b.Store().Subscribe(func(ev store.Event) {
		if ev.Kind == store.MessageAdded {
			stored <- time.Now()
		}
	})
	defer cancel()
	c := submissionSession(b, p.a)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		msg := fmt.Sprintf("From: alice@a.test\r\nTo: bob@b.test\r\nSubject: latency %d\r\n\r\n%s", i, body)
		start := time.Now()
		if err := c.SendMail("alice@a.test", []string{"bob@b.test"}, strings.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-stored:
			lat = append(lat, at.Sub(start))
		case <-time.After(time.Minute):
			b.Fatal("message not stored at B within a minute")
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// `mailstead queue list|retry|remove` show, hurry and drop queued mail.
func TestQueueCommands(t *testing.T) {
	p := newPair(t, map[string]string{"queue.retry_initial": "1h"})
	if err := submit(t, p.a, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test"}, aliceToBob); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a deferral", 30*time.Second, func() bool {
		q := queueOf(t, p.a.Store())
		return len(q) == 1 && q[0].Attempts == 1
	})
	run := func(args ...string) string {
		t.Helper()
		out, err := server.Execute(context.Background(), p.a.Store(), server.Request{Command: "queue", Args: args})
		if err != nil {
			t.Fatalf("queue %v: %v", args, err)
		}
		return out
	}
	id := fmt.Sprint(queueOf(t, p.a.Store())[0].ID)
	if out := run("list"); !strings.Contains(out, "bob@b.test") || !strings.Contains(out, "connecting to mail.b.test") {
		t.Fatalf("queue list:\n%s", out)
	}
	if out := run("retry", id); !strings.Contains(out, "1 queued") {
		t.Fatalf("queue retry: %s", out)
	}
	if q := queueOf(t, p.a.Store()); q[0].Attempts == 1 && q[0].NextAttempt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("retry left the next attempt at %v", q[0].NextAttempt)
	}
	run("remove", id)
	if q := queueOf(t, p.a.Store()); len(q) != 0 {
		t.Fatalf("queue after remove: %v", q)
	}
	if _, err := server.Execute(context.Background(), p.a.Store(), server.Request{Command: "queue", Args: []string{"remove", id}}); err == nil {
		t.Fatal("removing a missing entry succeeded")
	}
}

// MTA-STS in enforce mode naming an MX that b.test does not use: A (a process trusting a test CA
// through SSL_CERT_FILE) fetches the policy over HTTPS, defers, and never sends to B in clear.
func TestRelayMTASTSEnforceNonMatchingMX(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a server process")
	}
	ipPolicy := mailtest.RandomLoopbackIP()
	zone := mailtest.NewDNSZone(t)
	offset := randomOffset()
	zone.Add("a.test. 300 IN MX 10 mail.a.test.", "mail.a.test. 300 IN A "+ipA,
		"b.test. 300 IN MX 10 mail.b.test.", "mail.b.test. 300 IN A "+ipB,
		"mta-sts.b.test. 300 IN A "+ipPolicy, `_mta-sts.b.test. 300 IN TXT "v=STSv1; id=1"`)
	caFile, cert := testCA(t, "mta-sts.b.test")
	ln, err := net.Listen("tcp", net.JoinHostPort(ipPolicy, fmt.Sprint(443+offset)))
	if err != nil {
		t.Fatal(err)
	}
	fetched := make(chan struct{})
	var once sync.Once
	policy := &http.Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.test\r\nmax_age: 86400\r\n"))
			once.Do(func() { close(fetched) })
		})}
	go policy.ServeTLS(ln, "", "")
	t.Cleanup(func() { policy.Close() })

	optsA := mailtest.Prepare(t, mailtest.Options{IP: ipA, PortOffset: offset, DNS: zone.Addr(), Domain: "a.test",
		Accounts: map[string]string{"alice@a.test": "alice-pw"}, Settings: fastQueue})
	b := mailtest.Start(t, mailtest.Options{IP: ipB, PortOffset: offset, DNS: zone.Addr(), Domain: "b.test",
		Accounts: map[string]string{"bob@b.test": "bob-pw"}})
	t.Setenv("SSL_CERT_FILE", caFile)
	procA := startProcess(t, optsA)
	if err := submit(t, &mailtest.Server{Opts: optsA}, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test"}, aliceToBob); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fetched:
	case <-time.After(30 * time.Second):
		t.Fatal("A never fetched the MTA-STS policy")
	}
	time.Sleep(3 * time.Second) // several retries at the test schedule
	procA.Kill()
	if n := len(mailtest.Mailbox(t, b.Store(), "bob@b.test", "INBOX")); n != 0 {
		t.Fatal("mail went to an MX the MTA-STS policy does not name")
	}
	st, err := store.Open(optsA.Dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := queueOf(t, st)
	if len(q) != 1 || q[0].Attempts < 1 || !strings.Contains(q[0].LastError, "MTA-STS") {
		t.Fatalf("A's queue: %+v", q)
	}
}

// testCA writes a new CA certificate to a PEM file and returns it with a server certificate for
// names signed by it.
func testCA(t *testing.T, names ...string) (caFile string, leaf tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailstead test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestRelayOverIPv6: a domain whose MX has only an AAAA record is reached over IPv6 (RFC 5321
// §5.1: both address families), here ::1.
func TestRelayOverIPv6(t *testing.T) {
	p := newPair(t, nil)
	p.zone.Add("c.test. 300 IN MX 10 mail.c.test.", "mail.c.test. 300 IN AAAA ::1")
	c := mailtest.Start(t, mailtest.Options{IP: "::1", PortOffset: p.offset, DNS: p.zone.Addr(), Domain: "c.test",
		Accounts: map[string]string{"carol@c.test": "carol-pw"}})
	msg := strings.ReplaceAll(aliceToBob, "bob@b.test", "carol@c.test")
	if err := submit(t, p.a, true, "alice@a.test", "alice-pw", "alice@a.test", []string{"carol@c.test"}, msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol's copy over IPv6", 30*time.Second, func() bool {
		return len(mailtest.Mailbox(t, c.Store(), "carol@c.test", "INBOX")) == 1
	})
	if got := mailtest.Mailbox(t, c.Store(), "carol@c.test", "INBOX")[0]; !bytes.Contains(got, []byte("[::1]")) {
		t.Errorf("not received over IPv6:\n%s", got)
	}
}
