package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"mailstead/junk"
	"mailstead/mailtest"
	"mailstead/server"
	"mailstead/store"
)

// BenchmarkReceive delivers 5 KB messages over 1 and over 20 concurrent SMTP sessions on port 25
// (loopback) into a server running as its own process, and reports throughput, the server's CPU
// time per message, database commits per message next to the disk's synced-write rate measured in
// the same run, the server's peak resident memory, and its PSS before and after the run.
//
//	go test -run '^$' -bench '^Benchmark(Receive|Submit)$' -benchtime 4000x ./server/
//
// With MAILSTEAD_BENCH_BASE set to another mailstead binary (an older commit's build), it runs
// base and head in turns, twice each, so a change is measured against its parent on the same
// machine at the same moment:
//
//	git worktree add /tmp/base HEAD~1 && (cd /tmp/base && go build -o mailstead .)
//	MAILSTEAD_BENCH_BASE=/tmp/base/mailstead go test -run '^$' -bench '^Benchmark(Receive|Submit)$' -benchtime 4000x ./server/
//
// With MAILSTEAD_BENCH_PROFILE set to a directory, each run of this build writes the server's CPU
// and allocation profiles there (`mailstead profile`, through the control socket, of the same
// binary and settings a user runs), named after the benchmark:
//
//	MAILSTEAD_BENCH_PROFILE=/tmp/prof go test -run '^$' -bench '^Benchmark(Receive|Submit)$' -benchtime 4000x ./server/
//	go tool pprof -top /tmp/prof/BenchmarkReceive_sessions=1.cpu.pprof
func BenchmarkReceive(b *testing.B) {
	for _, sessions := range []int{1, 20} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			benchBaseAndHead(b, func(b *testing.B, binary string) { benchReceive(b, binary, sessions) })
		})
	}
}

// BenchmarkSubmit submits 5 KB messages over 4 sessions on port 587 (STARTTLS, then AUTH PLAIN,
// once per session) to a local mailbox: each is checked against the user's addresses, completed,
// signed with both of the domain's DKIM keys (RSA and Ed25519) and delivered durably. Figures and
// environment variables as for BenchmarkReceive.
func BenchmarkSubmit(b *testing.B) {
	b.Run("sessions=4", func(b *testing.B) {
		benchBaseAndHead(b, func(b *testing.B, binary string) { benchSubmit(b, binary, 4) })
	})
}

// BenchmarkReceiveJunk measures the junk filter's share of receiving: 5 KB messages of words over
// 20 sessions into an account whose filter is off, then on with a model trained on 600 messages
// of the same vocabulary, in turns, twice each.
//
//	go test -run '^$' -bench ReceiveJunk -benchtime 4000x ./server/
func BenchmarkReceiveJunk(b *testing.B) {
	body := string(benchWords(rand.New(rand.NewPCG(3, 4)), 5000))
	for range 2 {
		for _, on := range []bool{false, true} {
			b.Run(map[bool]string{false: "filter=off", true: "filter=on"}[on], func(b *testing.B) {
				benchSMTP(b, "", 25, 20, func(addr string) (*gosmtp.Client, error) { return gosmtp.Dial(addr) },
					"x@remote.test", body, func(st *store.Store, acc int64) { benchJunkModel(b, st, acc, on) })
			})
		}
	}
}

// benchJunkModel switches the account's filter off, or trains it on 600 messages.
func benchJunkModel(b *testing.B, st *store.Store, acc int64, on bool) {
	ctx := context.Background()
	if !on {
		if err := st.SetJunkSettings(ctx, acc, false, 0); err != nil {
			b.Fatal(err)
		}
		return
	}
	f := &junk.Filter{Store: st}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 600 {
		if _, err := f.Train(ctx, acc, benchWords(r, 5000), i%2 == 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.SetJunkBootstrapped(ctx, acc, true); err != nil {
		b.Fatal(err)
	}
}

// benchWords is a message of about size bytes drawn from a vocabulary of 8000 words.
func benchWords(r *rand.Rand, size int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Subject: word%d word%d\r\nFrom: sender%d@remote.test\r\n\r\n", r.IntN(8000), r.IntN(8000), r.IntN(50))
	for sb.Len() < size {
		fmt.Fprintf(&sb, "word%d ", r.IntN(8000))
		if r.IntN(12) == 0 {
			sb.WriteString("\r\n")
		}
	}
	return []byte(sb.String() + "\r\n")
}

func benchBaseAndHead(b *testing.B, run func(b *testing.B, binary string)) {
	base := os.Getenv("MAILSTEAD_BENCH_BASE")
	if base == "" {
		run(b, "")
		return
	}
	for range 2 {
		b.Run("base", func(b *testing.B) { run(b, base) })
		b.Run("head", func(b *testing.B) { run(b, "") })
	}
}

func benchReceive(b *testing.B, binary string, sessions int) {
	body := "Subject: bench\r\nFrom: x@remote.test\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 62)
	benchSMTP(b, binary, 25, sessions, func(addr string) (*gosmtp.Client, error) { return gosmtp.Dial(addr) },
		"x@remote.test", body, nil)
}

func benchSubmit(b *testing.B, binary string, sessions int) {
	body := "Subject: bench\r\nFrom: alice@example.test\r\nTo: alice@example.test\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 78)+"\r\n", 62)
	benchSMTP(b, binary, 587, sessions, func(addr string) (*gosmtp.Client, error) {
		c, err := gosmtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil, err
		}
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.test", "alice-password")); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}, "alice@example.test", body, nil)
}

// benchSMTP runs b.N transactions from sender to alice@example.test over sessions connections
// to port, each made by dial, against a server process started from binary ("" for this build).
// prepare, if set, changes alice's data before the server starts.
func benchSMTP(b *testing.B, binary string, port, sessions int, dial func(addr string) (*gosmtp.Client, error), sender, body string,
	prepare func(st *store.Store, acc int64)) {
	// A directory of its own per run: b.TempDir names repeat across repeated sub-benchmarks.
	dir, err := os.MkdirTemp("", "mailstead-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	// The sender's zone answers "no such record" with an SOA, as real zones do, so a resolver
	// may keep negative answers as it would in production (RFC 2308).
	zone := mailtest.NewDNSZone(b)
	zone.Add("remote.test. 300 IN A 127.0.0.1")
	zone.SetNegativeTTL(300)
	opts := mailtest.Prepare(b, mailtest.Options{Binary: binary, Dir: dir, DNS: zone.Addr()})
	if prepare != nil {
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		acc, err := st.AccountByAddress(context.Background(), "alice@example.test")
		if err != nil {
			b.Fatal(err)
		}
		prepare(st, acc.ID)
		st.Close()
	}
	p := mailtest.StartProcess(b, opts)
	pss0, pssErr := p.PSS()
	fsyncRate := syncedWritesPerSecond(b, opts.Dir)
	// Sessions are set up (TLS, AUTH) before the clock and the profiles start.
	clients := make([]*gosmtp.Client, sessions)
	for i := range clients {
		if clients[i], err = dial(opts.Addr(port)); err != nil {
			b.Fatal(err)
		}
	}
	profile := benchProfile(b, opts.Dir, binary)

	commits0 := statCommits(b, opts.Dir)
	cpu0, _ := p.CPUTime()
	b.ResetTimer()
	start := time.Now()
	var next sync.WaitGroup
	work := make(chan int, b.N)
	for i := 0; i < b.N; i++ {
		work <- i
	}
	close(work)
	for _, c := range clients {
		next.Add(1)
		go func() {
			defer next.Done()
			defer c.Close()
			for range work {
				if err := c.SendMail(sender, []string{"alice@example.test"}, strings.NewReader(body)); err != nil {
					b.Error(err)
					return
				}
			}
			c.Quit()
		}()
	}
	next.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu1, _ := p.CPUTime()
	profile()
	commits := statCommits(b, opts.Dir) - commits0

	n := float64(b.N)
	b.ReportMetric(n/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/1000/n, "server-cpu-ms/msg")
	b.ReportMetric(float64(commits)/n, "commits/msg")
	b.ReportMetric(fsyncRate, "disk-fsyncs/s")
	b.ReportMetric((n/elapsed.Seconds())/fsyncRate, "msgs-per-fsync-time")
	if rss, err := p.PeakRSS(); err == nil {
		b.ReportMetric(float64(rss)/(1<<20), "server-peak-rss-MiB")
	}
	if pss1, err := p.PSS(); err == nil && pssErr == nil {
		b.ReportMetric(float64(pss0)/(1<<20), "server-pss-start-MiB")
		b.ReportMetric(float64(pss1)/(1<<20), "server-pss-end-MiB")
	}
}

// benchProfile starts the server's CPU profile when MAILSTEAD_BENCH_PROFILE names a directory
// and this build runs; the function it returns stops it and writes the allocation profile.
func benchProfile(b *testing.B, dataDir, binary string) func() {
	out := os.Getenv("MAILSTEAD_BENCH_PROFILE")
	if out == "" || binary != "" {
		return func() {}
	}
	out, err := filepath.Abs(out)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	name := filepath.Join(out, strings.ReplaceAll(b.Name(), "/", "_"))
	call := func(args ...string) {
		if _, err := server.Call(dataDir, server.Request{Command: server.ProfileCommand, Args: args}); err != nil {
			b.Fatalf("profile %v: %v", args, err)
		}
	}
	call("cpu-start", name+".cpu.pprof")
	return func() {
		call("cpu-stop")
		call("allocs", name+".allocs.pprof")
	}
}

func statCommits(b *testing.B, dir string) int64 {
	out, err := server.Call(dir, server.Request{Command: "stats"})
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "commits "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatalf("no commits in stats: %q", out)
	return 0
}

// syncedWritesPerSecond measures how many 4 KiB write+fsync rounds the disk under dir does in a
// second: the ceiling for a server that commits each message on its own.
func syncedWritesPerSecond(b *testing.B, dir string) float64 {
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	start := time.Now()
	n := 0
	for time.Since(start) < time.Second {
		if _, err := f.WriteAt(buf, int64(n%64)*4096); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}
