package server_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest"
	"mailstead/server"
)

// loginOver makes one login over an implicit-TLS port from the loopback address from and returns
// the server's answer to it: IMAP LOGIN (993), POP3 USER/PASS (995) or SMTP AUTH PLAIN (465).
func loginOver(t *testing.T, srv *mailtest.Server, port int, from, user, pass string) string {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", srv.Addr(port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	// reply reads lines until one starts with prefix and returns it.
	reply := func(send, prefix string) string {
		if send != "" {
			c.Write([]byte(send + "\r\n"))
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("port %d after %q: %v", port, send, err)
			}
			if strings.HasPrefix(line, prefix) {
				return strings.TrimSpace(line)
			}
		}
	}
	switch port {
	case server.PortIMAPS:
		reply("", "* OK")
		return reply("a LOGIN "+user+" "+pass, "a ")
	case server.PortPOP3S:
		reply("", "+OK")
		reply("USER "+user, "+OK")
		return reply("PASS "+pass, "")
	default:
		reply("", "220 ")
		reply("EHLO client.test", "250 ")
		return reply("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)), "")
	}
}

// TestOneLoginBudgetForEveryProtocol: wrong passwords over IMAP, POP3 and submission from one
// address add up in one budget (30 an hour); past it each protocol refuses at once with its
// temporary-failure reply, even for the right password, while another address still logs in.
func TestOneLoginBudgetForEveryProtocol(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	const user, pass = "alice@example.test", "alice-password"
	attacker, other := "127.0.0.2", "127.0.0.3"
	ports := []int{server.PortIMAPS, server.PortPOP3S, server.PortSubmissions}
	wrong := map[int]string{server.PortIMAPS: "a NO", server.PortPOP3S: "-ERR [AUTH]", server.PortSubmissions: "535 "}
	for i := range 30 {
		p := ports[i%3]
		if got := loginOver(t, srv, p, attacker, user, "wrong"); !strings.HasPrefix(got, wrong[p]) {
			t.Fatalf("wrong guess %d on %d: %q", i+1, p, got)
		}
	}
	refused := map[int]string{server.PortIMAPS: "a NO [UNAVAILABLE] Too many failed logins",
		server.PortPOP3S: "-ERR [SYS/TEMP] too many failed logins", server.PortSubmissions: "454 4.7.0 Too many failed logins"}
	for _, p := range ports {
		if got := loginOver(t, srv, p, attacker, user, pass); !strings.HasPrefix(got, refused[p]) {
			t.Errorf("port %d over the budget: %q, want %q", p, got, refused[p])
		}
	}
	if got := loginOver(t, srv, server.PortIMAPS, other, user, pass); !strings.HasPrefix(got, "a OK") {
		t.Errorf("right password from another address: %q", got)
	}
}

// TestIdleConnectionsFromOneClientDoNotBlockHTTPS: one address opens 300 idle connections to 443
// and 80; it keeps connections.max_per_ip of each, the rest are closed at once and counted, and
// another address still gets its page and the MTA-STS policy.
func TestIdleConnectionsFromOneClientDoNotBlockHTTPS(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	attacker := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	for _, port := range []int{server.PortHTTPS, server.PortHTTP} {
		closed := 0
		for range 300 {
			c, err := attacker.Dial("tcp", srv.Addr(port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
				closed++ // refused: closed without a byte
			}
		}
		if closed != 300-32 {
			t.Errorf("port %d: %d of 300 idle connections closed, want %d", port, closed, 300-32)
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, path := range []string{"/login", "/.well-known/mta-sts.txt"} {
		req, _ := http.NewRequest("GET", "https://"+srv.Addr(server.PortHTTPS)+path, nil)
		if strings.Contains(path, "mta-sts") {
			req.Host = "mta-sts.example.test"
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s while one client holds its slots: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSIGTERMWithSilentClients: clients that connect to 993, 465 and 995 and never start TLS
// neither hold up SIGTERM (the process exits cleanly) nor keep a slot past the handshake
// deadline.
func TestSIGTERMWithSilentClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server process")
	}
	opts := mailtest.Prepare(t, mailtest.Options{})
	p := mailtest.StartProcess(t, opts)
	for _, port := range []int{server.PortIMAPS, server.PortSubmissions, server.PortPOP3S} {
		for range 10 {
			c, err := net.Dial("tcp", opts.Addr(port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
	}
	// The grace period is 30 s; a process still running after it and a margin is stuck.
	if err := p.Terminate(45 * time.Second); err != nil {
		t.Fatalf("SIGTERM with silent clients: %v", err)
	}
}

// TestConnectionLimitsAreSettings: imap.max_connections_per_ip and connections.max_per_ip set
// the limits the listeners apply.
func TestConnectionLimitsAreSettings(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{Settings: map[string]string{
		"imap.max_connections_per_ip": "2", "connections.max_per_ip": "4"}})
	read := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, _ := bufio.NewReader(c).ReadString('\n')
		return l
	}
	for i := range 3 {
		c, err := tls.Dial("tcp", srv.Addr(server.PortIMAPS), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		want := map[bool]string{true: "* OK", false: "* BYE [UNAVAILABLE]"}[i < 2]
		if l := read(c); !strings.HasPrefix(l, want) {
			t.Errorf("IMAPS connection %d: %q, want %q", i+1, l, want)
		}
	}
	for i := range 5 {
		c, err := net.Dial("tcp", srv.Addr(server.PortSMTP))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		l := read(c)
		if got, want := strings.HasPrefix(l, "220 "), i < 4; got != want {
			t.Errorf("SMTP connection %d: %q", i+1, l)
		}
	}
	// Both refusals are counted, each at its layer.
	want := []string{`mailstead_connections_refused_total{limit="protocol",service="imap"} 1`,
		`mailstead_connections_refused_total{limit="client",service="smtp"} 1`}
	page := metricsPage(t, srv)
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("metrics lack %s:\n%s", w, grepLines(page, "refused"))
		}
	}
}

func metricsPage(t *testing.T, srv *mailtest.Server) string {
	t.Helper()
	resp, err := http.Get("http://" + srv.Addr(server.PortMetrics) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestKnownClientKeepsLoggingInDuringAnAttack: wrong guesses for one account from several
// addresses stop at 60 an hour; past that a login from a new address is refused without a
// check, while the owner's client, which logged in from its address before, keeps working.
func TestKnownClientKeepsLoggingInDuringAnAttack(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	const user, pass = "alice@example.test", "alice-password"
	owner := "127.0.0.3"
	if got := loginOver(t, srv, server.PortIMAPS, owner, user, pass); !strings.HasPrefix(got, "a OK") {
		t.Fatalf("owner's first login: %q", got)
	}
	checked := 0
	for i := range 75 {
		attacker := []string{"127.0.1.1", "127.0.1.2", "127.0.1.3"}[i%3]
		if got := loginOver(t, srv, server.PortIMAPS, attacker, user, "guess"); strings.HasPrefix(got, "a NO [AUTHENTICATIONFAILED]") {
			checked++
		}
	}
	if checked != 60 {
		t.Errorf("%d of 75 guesses from three addresses checked, want 60", checked)
	}
	if got := loginOver(t, srv, server.PortIMAPS, "127.0.0.4", user, pass); !strings.HasPrefix(got, "a NO [UNAVAILABLE]") {
		t.Errorf("a new address during the attack: %q, want NO [UNAVAILABLE]", got)
	}
	if got := loginOver(t, srv, server.PortIMAPS, owner, user, pass); !strings.HasPrefix(got, "a OK") {
		t.Errorf("the owner's client during the attack: %q", got)
	}
}

// TestFailedHandshakesAreCounted: bytes that are not TLS on 993, 465, 995 and 443 fail the
// handshake, and each protocol's failure is counted in mailstead_tls_handshake_failures_total.
func TestFailedHandshakesAreCounted(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	for _, port := range []int{server.PortIMAPS, server.PortSubmissions, server.PortPOP3S, server.PortHTTPS} {
		c, err := net.Dial("tcp", srv.Addr(port))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n\r\n\r\n\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c) // until the server gives up on the handshake
		c.Close()
	}
	want := []string{`proto="imap"`, `proto="smtp"`, `proto="pop3"`, `proto="https"`}
	var page string
	for range 200 {
		page = metricsPage(t, srv)
		missing := 0
		for _, w := range want {
			if !strings.Contains(page, "mailstead_tls_handshake_failures_total{"+w+"} 1") {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond) // a handshake fails when the server gives up on it
	}
	t.Errorf("handshake failures not counted per protocol:\n%s", grepLines(page, "handshake"))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
