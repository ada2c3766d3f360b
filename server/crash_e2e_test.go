package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/mailtest"
	"mailstead/store"
)

// TestCrashLosesNothingAcknowledged kills the server with SIGKILL while several sessions deliver,
// and checks that every message that got a 250 is stored exactly once.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	opts := mailtest.Prepare(t, mailtest.Options{})
	p := mailtest.StartProcess(t, opts)

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-m%d", w, i)
				msg := "From: x@remote.test\r\nSubject: " + id + "\r\nMessage-ID: <" + id + "@remote.test>\r\n\r\n" + strings.Repeat("crash safety\r\n", 200)
				c, err := gosmtp.Dial(opts.Addr(25))
				if err != nil {
					return // the server is gone
				}
				err = c.SendMail("x@remote.test", []string{"alice@example.test"}, strings.NewReader(msg))
				c.Close()
				if err == nil {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	mailtest.WaitFor(t, 20*time.Second, "some acknowledged deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 100
	})
	p.Kill()
	close(stop)
	wg.Wait()

	st, err := store.Open(opts.Dir, store.Options{})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer st.Close()
	if res, err := st.IntegrityCheck(context.Background()); err != nil || res != "ok" {
		t.Fatalf("integrity check: %q %v", res, err)
	}
	seen := map[string]int{}
	subject := regexp.MustCompile(`(?m)^Subject: (w\d+-m\d+)\r$`)
	for _, m := range mailtest.Mailbox(t, st, "alice@example.test", "INBOX") {
		if s := subject.FindSubmatch(m); s != nil {
			seen[string(s[1])]++
		}
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged message %s stored %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("message %s stored %d times", id, n)
		}
	}
	t.Logf("%d acknowledged before SIGKILL, %d stored", len(acked), len(seen))
}

// TestSIGTERMFinishesTransactionInFlight: a message whose DATA is under way when SIGTERM arrives
// is still accepted; the process then exits cleanly and new connections are refused.
func TestSIGTERMFinishesTransactionInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a server process")
	}
	opts := mailtest.Prepare(t, mailtest.Options{})
	p := mailtest.StartProcess(t, opts)
	cv := dial(t, opts.Addr(25))
	cv.cmd("EHLO client.remote.test", "250 ")
	cv.cmd("MAIL FROM:<x@remote.test>", "250 ")
	cv.cmd("RCPT TO:<alice@example.test>", "250 ")
	cv.cmd("DATA", "354 ")
	cv.send("From: x@remote.test\r\nSubject: in flight\r\n\r\nfirst half\r\n")
	idle := dial(t, opts.Addr(25)) // an idle session must not hold the shutdown up
	idle.cmd("EHLO idle.remote.test", "250 ")

	term := make(chan error, 1)
	go func() { term <- p.Terminate(20 * time.Second) }()
	time.Sleep(300 * time.Millisecond)
	cv.send("second half\r\n.\r\n")
	cv.expect("250 ")
	if err := <-term; err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Stderr.String())
	}
	if c, err := net.DialTimeout("tcp", opts.Addr(25), time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting connections after shutdown")
	}
	st, err := store.Open(opts.Dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	box := mailtest.Mailbox(t, st, "alice@example.test", "INBOX")
	if len(box) != 1 || !bytes.Contains(box[0], []byte("second half")) {
		t.Fatalf("message in flight not stored whole: %d messages", len(box))
	}
}

// TestCLIWhileServerRuns: management commands reach the running server through its control
// socket; passwords are read from stdin only.
func TestCLIWhileServerRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a server process")
	}
	opts := mailtest.Prepare(t, mailtest.Options{})
	mailtest.StartProcess(t, opts)
	bin := mailtest.Binary(t)
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--data", opts.Dir)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mailstead %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("", "domain", "add", "second.test")
	run("secret-password\n", "account", "add", "dave@second.test")
	run("", "alias", "add", "postmaster@second.test", "dave@second.test")
	if out := run("", "account", "list"); !strings.Contains(out, "dave@second.test") {
		t.Fatalf("account list: %q", out)
	}
	if out := run("", "alias", "list"); !strings.Contains(out, "postmaster@second.test") {
		t.Fatalf("alias list: %q", out)
	}
	// The running server sees the new account at once.
	if err := send(t, opts.Addr(25), "x@remote.test", []string{"postmaster@second.test"}, []byte("From: x@remote.test\r\nSubject: hi\r\n\r\nhi\r\n"), nil); err != nil {
		t.Fatalf("deliver to new alias: %v", err)
	}
	run("new-password\n", "account", "passwd", "dave@second.test")
	if out := run("", "settings", "get", "smtp.max_recipients"); strings.TrimSpace(out) != "100" {
		t.Fatalf("settings get: %q", out)
	}
	if out := run("", "certs"); !strings.Contains(out, "source:") || !strings.Contains(out, "mail.example.test") {
		t.Fatalf("certs: %q", out)
	}
	bad := exec.Command(bin, "settings", "set", "acme.directory", "ftp://nowhere", "--data", opts.Dir)
	if out, err := bad.CombinedOutput(); err == nil {
		t.Fatalf("an invalid acme.directory was accepted: %s", out)
	}
	cmd := exec.Command(bin, "account", "add", "eve@second.test", "--data", opts.Dir)
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("account add without a password on stdin succeeded: %s", out)
	}
}
