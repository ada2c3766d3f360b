package server_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/mailtest"
	"mailstead/server"
)

// BenchmarkReceive delivers 5 KB messages over 20 concurrent SMTP sessions on loopback into a
// server running as its own process, and reports throughput, the server's CPU time per message,
// database commits per message next to the disk's synced-write rate measured in the same run, and
// the server's peak resident memory.
//
//	go test -run '^$' -bench Receive -benchtime 4000x ./server/
//
// With MAILSTEAD_BENCH_BASE set to another mailstead binary (an older commit's build), it runs
// base and head in turns, twice each, so a change is measured against its parent on the same
// machine at the same moment:
//
//	git archive HEAD~1 | tar -x -C /tmp/base && (cd /tmp/base && go build -o mailstead .)
//	MAILSTEAD_BENCH_BASE=/tmp/base/mailstead go test -run '^$' -bench Receive -benchtime 4000x ./server/
func BenchmarkReceive(b *testing.B) {
	base := os.Getenv("MAILSTEAD_BENCH_BASE")
	if base == "" {
		benchReceive(b, "")
		return
	}
	for range 2 {
		b.Run("base", func(b *testing.B) { benchReceive(b, base) })
		b.Run("head", func(b *testing.B) { benchReceive(b, "") })
	}
}

func benchReceive(b *testing.B, binary string) {
	const sessions = 20
	// A directory of its own per run: b.TempDir names repeat across repeated sub-benchmarks.
	dir, err := os.MkdirTemp("", "mailstead-receive-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	opts := mailtest.Prepare(b, mailtest.Options{Binary: binary, Dir: dir})
	p := mailtest.StartProcess(b, opts)
	body := "Subject: bench\r\nFrom: x@remote.test\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 62)
	fsyncRate := syncedWritesPerSecond(b, opts.Dir)

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
	for s := 0; s < sessions; s++ {
		next.Add(1)
		go func() {
			defer next.Done()
			c, err := gosmtp.Dial(opts.Addr(25))
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			for range work {
				if err := c.SendMail("x@remote.test", []string{"alice@example.test"}, strings.NewReader(body)); err != nil {
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
