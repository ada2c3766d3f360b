// Package mailtest is the test harness: it starts whole mailstead servers on loopback (in-process
// or as a child process that can be killed), with a temporary data directory, and a fake DNS zone.
// It is used by tests only and must never be imported by the product.
package mailtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"mailstead/server"
	"mailstead/store"
)

// DefaultPortOffset keeps test listeners away from privileged and common ports.
const DefaultPortOffset = 20000

// Options describe a test server.
type Options struct {
	// IP to listen on. Empty picks a random address in 127.0.0.0/8, so that parallel test
	// packages never collide on ports.
	IP string
	// PortOffset is added to every standard port (and to the remote SMTP port). Zero means
	// DefaultPortOffset.
	PortOffset int
	// DNS is the HOST:PORT of a fake zone (NewDNSZone(t).Addr()); empty means a new zone that holds only
	// remote.test (the sender domain tests use).
	DNS string
	// Dir is the data directory; empty means a new t.TempDir().
	Dir string
	// Domain and accounts created before start. Domain empty means "example.test".
	Domain   string
	Hostname string            // mail hostname; empty means "mail." + Domain
	Accounts map[string]string // address → password; empty means alice@Domain / "alice-password"
	// Settings applied before start (store keys).
	Settings map[string]string
	// Verbose sends server logs to the test log.
	Verbose bool
	// Binary is the mailstead program StartProcess runs; empty means one built from this module
	// (benchmarks set it to an older build to compare side by side).
	Binary string
	// ACMEClient reaches a test ACME server (acmetest.CA.Client); with it the server orders
	// certificates from the directory in the acme.directory setting.
	ACMEClient *http.Client
}

// Server is a running in-process mailstead.
type Server struct {
	*server.Server
	Opts Options
	t    testing.TB
	once sync.Once
}

func (o *Options) fill(t testing.TB) {
	if o.IP == "" {
		o.IP = RandomLoopbackIP()
	}
	if o.PortOffset == 0 {
		o.PortOffset = DefaultPortOffset
	}
	if o.DNS == "" {
		// A zone of its own, so no test ever asks a real DNS server. It knows remote.test, the
		// sender domain tests use, so MAIL FROM checks pass.
		z := NewDNSZone(t)
		z.Add("remote.test. 300 IN A 127.0.0.1")
		o.DNS = z.Addr()
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Domain == "" {
		o.Domain = "example.test"
	}
	if o.Hostname == "" {
		o.Hostname = "mail." + o.Domain
	}
	if o.Accounts == nil {
		o.Accounts = map[string]string{"alice@" + o.Domain: "alice-password"}
	}
}

// RandomLoopbackIP returns an address in 127.0.0.0/8 other than 127.0.0.1.
func RandomLoopbackIP() string {
	b := make([]byte, 3)
	for {
		rand.Read(b)
		if b[0] != 0 && b[2] != 0 && b[2] != 255 {
			return fmt.Sprintf("127.%d.%d.%d", b[0], b[1], b[2])
		}
	}
}

// Prepare creates the data directory with hostname, domain, accounts and settings, as the setup
// wizard would, and returns the filled options.
func Prepare(t testing.TB, opts Options) Options {
	t.Helper()
	opts.fill(t)
	st, err := store.Open(opts.Dir, store.Options{})
	if err != nil {
		t.Fatalf("mailtest: open store: %v", err)
	}
	defer st.Close()
	ctx := context.Background()
	if ok, _ := st.IsLocalDomain(ctx, opts.Domain); !ok {
		if _, err := st.AddDomain(ctx, opts.Domain); err != nil {
			t.Fatalf("mailtest: add domain: %v", err)
		}
	}
	for addr, pw := range opts.Accounts {
		if _, err := st.AddAccount(ctx, addr, pw, false); err != nil {
			t.Fatalf("mailtest: add account %s: %v", addr, err)
		}
	}
	// A dead loopback ACME directory: a test that lets the hostname resolve to the server must
	// never make it order from a real CA. Tests of ACME set acme.directory to Pebble's.
	settings := map[string]string{"hostname": opts.Hostname, "acme.directory": "https://127.0.0.1:1/directory"}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	for k, v := range settings {
		if err := st.SetSetting(ctx, k, v); err != nil {
			t.Fatalf("mailtest: setting %s: %v", k, err)
		}
	}
	return opts
}

// Start prepares a data directory and runs a server in this process until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	opts = Prepare(t, opts)
	return Run(t, opts)
}

// Run starts a server on an already prepared data directory (for restarts).
func Run(t testing.TB, opts Options) *Server {
	t.Helper()
	opts.fill(t)
	logger := slog.New(slog.DiscardHandler)
	if opts.Verbose || os.Getenv("MAILSTEAD_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(server.Options{
		DataDir: opts.Dir, Bind: opts.IP, PortOffset: opts.PortOffset, DNS: opts.DNS,
		Logger: logger, ShutdownGrace: 5 * time.Second, ACMEClient: opts.ACMEClient,
	})
	if err != nil {
		t.Fatalf("mailtest: new server: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("mailtest: start server: %v", err)
	}
	s := &Server{Server: srv, Opts: opts, t: t}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down (once; also done at test cleanup).
func (s *Server) Stop() {
	s.once.Do(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			s.t.Errorf("mailtest: shutdown: %v", err)
		}
	})
}

// Addr returns IP:port of a standard port (25, 587, 143, …) with the offset applied.
func (o Options) Addr(stdPort int) string {
	return net.JoinHostPort(o.IP, strconv.Itoa(stdPort+o.PortOffset))
}

// AccountID returns the id of a local account (fails the test if missing).
func (s *Server) AccountID(addr string) int64 {
	s.t.Helper()
	a, err := s.Store().AccountByAddress(context.Background(), addr)
	if err != nil {
		s.t.Fatalf("mailtest: account %s: %v", addr, err)
	}
	return a.ID
}

// Mailbox returns the stored messages (full bytes, in UID order) of an account's mailbox.
func Mailbox(t testing.TB, st *store.Store, addr, mailbox string) [][]byte {
	t.Helper()
	ctx := context.Background()
	a, err := st.AccountByAddress(ctx, addr)
	if err != nil {
		t.Fatalf("mailtest: account %s: %v", addr, err)
	}
	mb, err := st.MailboxByName(ctx, a.ID, mailbox)
	if err != nil {
		t.Fatalf("mailtest: mailbox %s of %s: %v", mailbox, addr, err)
	}
	msgs, err := st.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatalf("mailtest: messages: %v", err)
	}
	var out [][]byte
	for _, m := range msgs {
		data, err := st.MessageData(ctx, m.ID)
		if err != nil {
			t.Fatalf("mailtest: message %d: %v", m.ID, err)
		}
		out = append(out, data)
	}
	return out
}

// WaitFor polls cond until it holds or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("mailtest: timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
