package server_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"mailstead/mailtest"
	"mailstead/server"
)

// BenchmarkAttack attacks a server running as its own process from loopback, as an attacker on
// the internet would, and reports what it costs the server and its users. Each part runs once,
// bounded in count and time, on a fresh process:
//
//		go test -run '^$' -bench Attack -benchtime 1x ./server/
//
//	  - web: 250 parallel wrong POST /login from one address; peak resident memory, and how long a
//	    correct web login from another address (that logged in before) takes meanwhile.
//	  - auth: 20 parallel connections from one address on each of 587, 993 and 995 making wrong
//	    logins for 5 s; peak resident memory, and a correct IMAP login meanwhile.
//	  - shutdown: 50 silent TCP clients on each of 993, 465 and 995 and 20 DATA senders sending a
//	    byte a second; seconds from SIGTERM to exit, against the 30 s grace period.
//	  - https: one address holds 256 idle connections to 443; how long a normal request takes.
func BenchmarkAttack(b *testing.B) {
	b.Run("web", benchWebLogins)
	b.Run("auth", benchMailAuth)
	b.Run("shutdown", benchShutdown)
	b.Run("https", benchIdleHTTPS)
}

const (
	attackerIP = "127.0.0.2"
	ownerIP    = "127.0.0.3" // the account's owner: logged in before the attack
	alice      = "alice@example.test"
	alicePW    = "alice-password"
)

func attackProcess(b *testing.B) *mailtest.Process {
	dir, err := os.MkdirTemp("", "mailstead-attack-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	opts := mailtest.Prepare(b, mailtest.Options{Dir: dir})
	p := mailtest.StartProcess(b, opts)
	b.Cleanup(func() { p.Kill() })
	return p
}

func dialerFrom(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
}

func httpsFrom(ip string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: dialerFrom(ip).DialContext, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// webLogin posts the login form and returns the status (0 if the connection failed).
func webLogin(c *http.Client, addr, pw string) int {
	req, _ := http.NewRequest("POST", "https://"+addr+"/login",
		strings.NewReader(url.Values{"address": {alice}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func reportPeakRSS(b *testing.B, p *mailtest.Process) {
	if rss, err := p.PeakRSS(); err == nil {
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	}
}

func benchWebLogins(b *testing.B) {
	p := attackProcess(b)
	addr := p.Opts.Addr(server.PortHTTPS)
	owner := httpsFrom(ownerIP)
	if st := webLogin(owner, addr, alicePW); st != http.StatusSeeOther {
		b.Fatalf("owner's first login: %d", st)
	}
	attacker := httpsFrom(attackerIP)
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 250 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st := webLogin(attacker, addr, "wrong")
			mu.Lock()
			codes[st]++
			mu.Unlock()
		}()
	}
	close(start)
	t0 := time.Now()
	st := webLogin(owner, addr, alicePW)
	ownerLatency := time.Since(t0)
	wg.Wait()
	if st != http.StatusSeeOther {
		b.Errorf("owner's login during the attack: %d", st)
	}
	b.Logf("250 wrong web logins: answers %v (0: connection refused)", codes)
	b.ReportMetric(ownerLatency.Seconds(), "owner-web-login-s")
	reportPeakRSS(b, p)
}

// mailLogin makes one login from ip on an implicit-TLS (993, 995) or STARTTLS (587) port and
// returns the answer line.
func mailLogin(p *mailtest.Process, port int, ip, pw string) (string, error) {
	raw, err := dialerFrom(ip).Dial("tcp", p.Opts.Addr(port))
	if err != nil {
		return "", err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(60 * time.Second))
	var c net.Conn = raw
	r := bufio.NewReader(c)
	line := func(send, prefix string) (string, error) {
		if send != "" {
			if _, err := io.WriteString(c, send+"\r\n"); err != nil {
				return "", err
			}
		}
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(l), nil
			}
		}
	}
	tlsUp := func() {
		tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
		c, r = tc, bufio.NewReader(tc)
	}
	switch port {
	case server.PortIMAPS:
		tlsUp()
		if _, err := line("", "* OK"); err != nil {
			return "", err
		}
		return line("a LOGIN "+alice+" "+pw, "a ")
	case server.PortPOP3S:
		tlsUp()
		if _, err := line("", "+OK"); err != nil {
			return "", err
		}
		if _, err := line("USER "+alice, "+OK"); err != nil {
			return "", err
		}
		return line("PASS "+pw, "")
	default: // 587
		if _, err := line("", "220 "); err != nil {
			return "", err
		}
		if _, err := line("EHLO bench.test", "250 "); err != nil {
			return "", err
		}
		if _, err := line("STARTTLS", "220 "); err != nil {
			return "", err
		}
		tlsUp()
		if _, err := line("EHLO bench.test", "250 "); err != nil {
			return "", err
		}
		return line("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+alice+"\x00"+pw)), "")
	}
}

func benchMailAuth(b *testing.B) {
	p := attackProcess(b)
	if l, err := mailLogin(p, server.PortIMAPS, ownerIP, alicePW); err != nil || !strings.HasPrefix(l, "a OK") {
		b.Fatalf("owner's first IMAP login: %q %v", l, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	stop := time.Now().Add(5 * time.Second)
	for _, port := range []int{server.PortSubmission, server.PortIMAPS, server.PortPOP3S} {
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					l, err := mailLogin(p, port, attackerIP, "wrong")
					key := fmt.Sprintf("%d %.12s", port, l)
					if err != nil {
						key = fmt.Sprintf("%d error", port)
					}
					mu.Lock()
					answers[key]++
					mu.Unlock()
				}
			}()
		}
	}
	time.Sleep(time.Second) // the attack is under way
	t0 := time.Now()
	l, err := mailLogin(p, server.PortIMAPS, ownerIP, alicePW)
	ownerLatency := time.Since(t0)
	wg.Wait()
	if err != nil || !strings.HasPrefix(l, "a OK") {
		b.Errorf("owner's IMAP login during the attack: %q %v", l, err)
	}
	b.Logf("wrong logins for 5 s: %v", answers)
	b.ReportMetric(ownerLatency.Seconds(), "owner-imap-login-s")
	reportPeakRSS(b, p)
}

func benchShutdown(b *testing.B) {
	p := attackProcess(b)
	var held []net.Conn
	b.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for _, port := range []int{server.PortIMAPS, server.PortSubmissions, server.PortPOP3S} {
		for i := range 50 {
			c, err := dialerFrom(fmt.Sprintf("127.0.9.%d", 1+i%5)).Dial("tcp", p.Opts.Addr(port))
			if err != nil {
				b.Fatal(err)
			}
			held = append(held, c) // silent: never starts TLS
		}
	}
	stopSlow := make(chan struct{})
	var slow sync.WaitGroup
	for i := range 20 {
		c, err := dialerFrom(fmt.Sprintf("127.0.8.%d", 1+i%2)).Dial("tcp", p.Opts.Addr(server.PortSMTP))
		if err != nil {
			b.Fatal(err)
		}
		held = append(held, c)
		r := bufio.NewReader(c)
		for _, cmd := range []string{"", "EHLO slow.test", "MAIL FROM:<x@remote.test>", "RCPT TO:<" + alice + ">", "DATA"} {
			if cmd != "" {
				io.WriteString(c, cmd+"\r\n")
			}
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					b.Fatalf("slow sender setup %q: %v", cmd, err)
				}
				if len(l) < 4 || l[3] != '-' {
					break
				}
			}
		}
		slow.Add(1)
		go func() {
			defer slow.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stopSlow:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
	}
	t0 := time.Now()
	err := p.Terminate(2 * time.Minute)
	exit := time.Since(t0)
	close(stopSlow)
	slow.Wait()
	if err != nil {
		b.Errorf("SIGTERM: %v", err)
	}
	b.ReportMetric(exit.Seconds(), "exit-after-SIGTERM-s")
	b.ReportMetric(30, "grace-s")
}

func benchIdleHTTPS(b *testing.B) {
	p := attackProcess(b)
	addr := p.Opts.Addr(server.PortHTTPS)
	refused := 0
	for range 256 {
		c, err := dialerFrom(attackerIP).Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			refused++
		}
	}
	t0 := time.Now()
	resp, err := httpsFrom(ownerIP).Get("https://" + addr + "/login")
	latency := time.Since(t0)
	if err != nil {
		b.Fatalf("normal request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("normal request: %d", resp.StatusCode)
	}
	b.Logf("256 idle connections from one address: %d closed at once", refused)
	b.ReportMetric(latency.Seconds(), "https-request-s")
}
