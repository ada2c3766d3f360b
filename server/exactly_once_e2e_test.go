package server_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"mailstead/mailtest"
)

// countingMX is a remote MX that counts each message it accepts per recipient, by the X-Seq
// header the test puts in every message.
type countingMX struct {
	mu    sync.Mutex
	seen  map[string]int // "seq rcpt" → deliveries
	total int
}

func (m *countingMX) counts() (distinct, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen), m.total
}

type countingSession struct {
	mx    *countingMX
	rcpts []string
}

func (s *countingSession) Reset()                                 { s.rcpts = nil }
func (s *countingSession) Logout() error                          { return nil }
func (s *countingSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *countingSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *countingSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, rest, ok := strings.Cut(string(b), "X-Seq: ")
	seq, _, _ := strings.Cut(rest, "\r\n")
	if !ok {
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "no X-Seq"}
	}
	s.mx.mu.Lock()
	defer s.mx.mu.Unlock()
	for _, rc := range s.rcpts {
		s.mx.seen[seq+" "+rc]++
		s.mx.total++
	}
	return nil
}

// Exactly once while the process lives: 4 submission sessions send 10,000 messages to a remote
// domain, every other one also addressed to a local account (the local copy and the queue row
// commit together, the case that used to be sent twice). The remote MX counts every recipient
// of every message: each arrives exactly once, none is missing, and each local copy is stored.
func TestRelayExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 10,000 messages")
	}
	n := 10000
	if raceDetector {
		n = 2000
	}
	const sessions = 4
	ipA, ipFar := mailtest.RandomLoopbackIP(), mailtest.RandomLoopbackIP()
	zone := mailtest.NewDNSZone(t)
	zone.Add("a.test. 300 IN MX 10 mail.a.test.", "mail.a.test. 300 IN A "+ipA,
		"far.test. 300 IN MX 10 mx.far.test.", "mx.far.test. 300 IN A "+ipFar)

	mx := &countingMX{seen: map[string]int{}}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &countingSession{mx: mx}, nil
	}))
	srv.Domain = "mx.far.test"
	srv.ErrorLog = discardLog{}
	ln, offset := listenWithOffset(t, ipFar, 25)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	settings := map[string]string{"queue.per_destination": "8"}
	for k, v := range fastQueue {
		settings[k] = v
	}
	a := mailtest.Start(t, mailtest.Options{IP: ipA, PortOffset: offset, DNS: zone.Addr(), Domain: "a.test",
		Accounts: map[string]string{"alice@a.test": "alice-pw", "carol@a.test": "carol-pw"}, Settings: settings})

	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := gosmtp.DialStartTLS(a.Opts.Addr(587), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", "alice-pw")); err != nil {
				t.Error(err)
				return
			}
			for i := range work {
				rcpts := []string{"bob@far.test"}
				if i%2 == 0 {
					rcpts = append(rcpts, "carol@a.test")
				}
				msg := fmt.Sprintf("From: alice@a.test\r\nTo: %s\r\nSubject: once %d\r\nX-Seq: %d\r\n\r\nbody\r\n",
					strings.Join(rcpts, ", "), i, i)
				if err := c.SendMail("alice@a.test", rcpts, strings.NewReader(msg)); err != nil {
					t.Errorf("message %d: %v", i, err)
					return
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// The queue being empty is the event: every row is delivered and gone, so nothing more can
	// be sent. The limit only keeps a broken queue from hanging the run.
	waitFor(t, "A's queue to empty", 5*time.Minute, func() bool { return len(queueOf(t, a.Store())) == 0 })
	distinct, total := mx.counts()
	if distinct != n || total != n {
		mx.mu.Lock()
		var dup []string
		for k, c := range mx.seen {
			if c > 1 && len(dup) < 10 {
				dup = append(dup, fmt.Sprintf("%s ×%d", k, c))
			}
		}
		mx.mu.Unlock()
		t.Fatalf("remote MX got %d deliveries of %d distinct messages, want %d of %d (missing %d, duplicates %d; e.g. %v)",
			total, distinct, n, n, n-distinct, total-distinct, dup)
	}
	if got := len(mailtest.Mailbox(t, a.Store(), "carol@a.test", "INBOX")); got != n/2 {
		t.Fatalf("carol has %d local copies, want %d", got, n/2)
	}
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

// listenWithOffset listens on ip at stdPort plus a random offset, so a fake remote server sits
// where a server started with that --port-offset looks for port stdPort.
func listenWithOffset(t testing.TB, ip string, stdPort int) (net.Listener, int) {
	t.Helper()
	for range 50 {
		offset := mailtest.DefaultPortOffset + 1 + int(time.Now().UnixNano()%20000)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(stdPort+offset)))
		if err == nil {
			return ln, offset
		}
	}
	t.Fatal("no free port on " + ip)
	return nil, 0
}

func netListen(ip string, port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
}
