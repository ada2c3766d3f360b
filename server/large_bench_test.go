package server_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"mailstead/mailtest"
)

// BenchmarkLargeMessages measures the server's resident memory (a process of its own, VmHWM)
// while 20 sessions at once each send a 45 MB message to port 25, while 20 sessions each submit
// a 40 MB message on 587, and above idle while one IMAP FETCH BODY[] and one POP3 RETR of a
// 45 MB message run. Each phase has a freshly started server on the same data directory, so each
// peak is its own.
//
//	go test -run '^$' -bench LargeMessages -benchtime 1x ./server/
func BenchmarkLargeMessages(b *testing.B) {
	dir, err := os.MkdirTemp("", "mailstead-large-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	opts := mailtest.Prepare(b, mailtest.Options{Dir: dir, Settings: map[string]string{"smtp.max_connections_per_ip": "40"}})
	const sessions = 20
	for i := 0; i < b.N; i++ {
		p := mailtest.StartProcess(b, opts)
		parallel(b, sessions, func() error {
			c, err := gosmtp.Dial(opts.Addr(25))
			if err != nil {
				return err
			}
			defer c.Close()
			return c.SendMail("x@remote.test", []string{"alice@example.test"}, largeMessage("x@remote.test", 45<<20))
		})
		reportPeak(b, p, 0, "mx-20x45MB-peak-rss-MiB")
		p.Kill()

		p = mailtest.StartProcess(b, opts)
		parallel(b, sessions, func() error {
			c, err := gosmtp.DialStartTLS(opts.Addr(587), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return err
			}
			defer c.Close()
			// The server bounds concurrent password hashing (454 4.7.0 when busy): 20 logins at
			// once take turns.
			for try := 0; ; try++ {
				err := c.Auth(sasl.NewPlainClient("", "alice@example.test", "alice-password"))
				if err == nil {
					break
				}
				if se, ok := err.(*gosmtp.SMTPError); !ok || se.Code != 454 || try > 100 {
					return err
				}
				time.Sleep(100 * time.Millisecond)
			}
			return c.SendMail("alice@example.test", []string{"alice@example.test"}, largeMessage("alice@example.test", 40<<20))
		})
		reportPeak(b, p, 0, "submission-20x40MB-peak-rss-MiB")
		p.Kill()

		p = mailtest.StartProcess(b, opts)
		idle := rss(b, p)
		n := imapFetch(b, opts.Addr(993))
		if n < 40<<20 {
			b.Fatalf("IMAP FETCH read %d bytes", n)
		}
		reportPeak(b, p, idle, "imap-fetch-45MB-above-idle-MiB")
		p.Kill()

		p = mailtest.StartProcess(b, opts)
		idle = rss(b, p)
		n = popRetr(b, opts.Addr(995))
		if n < 40<<20 {
			b.Fatalf("POP3 RETR read %d bytes", n)
		}
		reportPeak(b, p, idle, "pop3-retr-45MB-above-idle-MiB")
		p.Kill()
	}
}

func parallel(b *testing.B, n int, f func() error) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := f(); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

// largeMessage streams a text message of about size bytes without holding it.
func largeMessage(from string, size int) io.Reader {
	head := "From: " + from + "\r\nTo: alice@example.test\r\nSubject: large\r\n\r\n"
	line := strings.Repeat("z", 78) + "\r\n"
	return io.MultiReader(strings.NewReader(head), &repeatReader{line: line, left: size / len(line)})
}

type repeatReader struct {
	line string
	left int
	pos  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.left > 0 {
		k := copy(p[n:], r.line[r.pos:])
		n += k
		r.pos += k
		if r.pos == len(r.line) {
			r.pos, r.left = 0, r.left-1
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func reportPeak(b *testing.B, p *mailtest.Process, base int64, metric string) {
	peak, err := p.PeakRSS()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(peak-base)/(1<<20), metric)
}

// rss is the process's resident memory now (VmRSS).
func rss(b *testing.B, p *mailtest.Process) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// imapFetch logs in over implicit TLS (993) as alice and fetches message 1 whole, returning the bytes read.
func imapFetch(b *testing.B, addr string) int64 {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	var total int64
	until := func(tag string) {
		for {
			line, err := r.ReadString('\n')
			total += int64(len(line))
			if err != nil {
				b.Fatalf("IMAP: %v", err)
			}
			if strings.HasPrefix(line, tag+" ") {
				if !strings.HasPrefix(line, tag+" OK") {
					b.Fatalf("IMAP: %s", line)
				}
				return
			}
			if i := strings.LastIndexByte(line, '{'); i >= 0 && strings.HasSuffix(line, "}\r\n") {
				var n int64
				fmt.Sscan(line[i+1:len(line)-3], &n)
				k, err := io.CopyN(io.Discard, r, n)
				total += k
				if err != nil {
					b.Fatalf("IMAP literal: %v", err)
				}
			}
		}
	}
	until("*")
	fmt.Fprintf(c, "a LOGIN alice@example.test alice-password\r\n")
	until("a")
	fmt.Fprintf(c, "b SELECT INBOX\r\n")
	until("b")
	fmt.Fprintf(c, "c FETCH 1 BODY.PEEK[]\r\n")
	total = 0
	until("c")
	return total
}

// popRetr logs in over implicit TLS (995) as alice and retrieves message 1, returning the bytes read.
func popRetr(b *testing.B, addr string) int64 {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReader(c)
	line := func() string {
		l, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("POP3: %v", err)
		}
		return l
	}
	line()
	for _, cmd := range []string{"USER alice@example.test", "PASS alice-password", "RETR 1"} {
		fmt.Fprintf(c, "%s\r\n", cmd)
		if l := line(); !strings.HasPrefix(l, "+OK") {
			b.Fatalf("POP3 %s: %s", cmd, l)
		}
	}
	var total int64
	for {
		l, err := r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			b.Fatalf("POP3 RETR: %v", err)
		}
		total += int64(len(l))
		if bytes.Equal(l, []byte(".\r\n")) {
			return total
		}
	}
}
