package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/textproto"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest"
	"mailstead/server"
)

// greeting reads the first line a plain-text listener sends.
func greeting(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting of %s: %v", addr, err)
	}
	return strings.TrimSpace(line)
}

func setSetting(t *testing.T, dir, key, value string) {
	t.Helper()
	if _, err := server.Call(dir, server.Request{Command: "settings", Args: []string{"set", key, value}}); err != nil {
		t.Fatalf("settings set %s %s: %v", key, value, err)
	}
}

// TestLiveSettings: on a running server a changed setting applies to the next session, with no
// restart: smtp.max_recipients 1 makes the second RCPT of the next session 452 4.5.3, and a new
// hostname is in the next SMTP, IMAP and POP3 greeting (and the SMTP EHLO reply).
func TestLiveSettings(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	dir := srv.Opts.Dir

	rcpt := func() (first, second string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", srv.Opts.Addr(25), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		tp := textproto.NewConn(c)
		if _, _, err := tp.ReadResponse(220); err != nil {
			t.Fatal(err)
		}
		cmd := func(line string) string {
			t.Helper()
			if err := tp.PrintfLine("%s", line); err != nil {
				t.Fatal(err)
			}
			code, msg, err := tp.ReadResponse(0)
			if err != nil && code == 0 {
				t.Fatalf("%s: %v", line, err)
			}
			return fmt.Sprintf("%d %s", code, msg)
		}
		cmd("EHLO client.remote.test")
		cmd("MAIL FROM:<x@remote.test>")
		return cmd("RCPT TO:<alice@example.test>"), cmd("RCPT TO:<postmaster@example.test>")
	}
	if first, second := rcpt(); !strings.HasPrefix(first, "250") || !strings.HasPrefix(second, "250") {
		t.Fatalf("two recipients before the change: %q, %q", first, second)
	}
	setSetting(t, dir, "smtp.max_recipients", "1")
	if first, second := rcpt(); !strings.HasPrefix(first, "250") || !strings.HasPrefix(second, "452 4.5.3") {
		t.Errorf("after smtp.max_recipients 1: first RCPT %q, second %q; want 250 then 452 4.5.3", first, second)
	}

	for _, port := range []int{server.PortSMTP, server.PortIMAP, server.PortPOP3} {
		if g := greeting(t, srv.Opts.Addr(port)); !strings.Contains(g, "mail.example.test") {
			t.Errorf("greeting on %d before the change: %q", port, g)
		}
	}
	setSetting(t, dir, "hostname", "mx2.example.test")
	for _, port := range []int{server.PortSMTP, server.PortIMAP, server.PortPOP3} {
		if g := greeting(t, srv.Opts.Addr(port)); !strings.Contains(g, "mx2.example.test") {
			t.Errorf("greeting on %d after the hostname change: %q", port, g)
		}
	}
	// Implicit TLS listeners greet with it too.
	c, err := tls.Dial("tcp", srv.Opts.Addr(server.PortIMAPS), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.Contains(line, "mx2.example.test") {
		t.Errorf("IMAPS greeting after the hostname change: %q", line)
	}
}

// TestInteropLiveSettingsPython: Python's smtplib, imaplib and poplib see a changed setting
// in their next session: the second RCPT refused with 452 after smtp.max_recipients 1, and the
// new hostname in each greeting.
func TestInteropLiveSettingsPython(t *testing.T) {
	python := mailtest.Python(t)
	srv := mailtest.Start(t, mailtest.Options{})
	setSetting(t, srv.Opts.Dir, "smtp.max_recipients", "1")
	setSetting(t, srv.Opts.Dir, "hostname", "mx2.example.test")
	port := func(p int) string { return strings.TrimPrefix(srv.Opts.Addr(p), srv.Opts.IP+":") }
	script := `
import smtplib, imaplib, poplib, sys
host, smtp_port, imap_port, pop_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = smtplib.SMTP()
code, banner = s.connect(host, smtp_port)
assert code == 220 and b"mx2.example.test" in banner, banner
s.ehlo("py.remote.test")
s.mail("x@remote.test")
assert s.rcpt("alice@example.test")[0] == 250
code, msg = s.rcpt("postmaster@example.test")
assert code == 452 and msg.startswith(b"4.5.3"), (code, msg)
s.quit()
i = imaplib.IMAP4(host, imap_port)
assert b"mx2.example.test" in i.welcome, i.welcome
i.logout()
p = poplib.POP3(host, pop_port)
assert b"mx2.example.test" in p.getwelcome(), p.getwelcome()
p.quit()
print("ok")
`
	cmd := exec.Command(python, "-c", script, srv.Opts.IP, port(server.PortSMTP), port(server.PortIMAP), port(server.PortPOP3))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("python: %v\n%s", err, out)
	}
}
