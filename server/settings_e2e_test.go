package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/textproto"
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
