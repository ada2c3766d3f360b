package smtp

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailstead/mailtest/testkit"
)

// spoolEnv is an MX server whose spool keeps only 1 KiB in memory, so that every test message
// above that goes through a file.
type spoolEnv struct {
	addr string
	dir  string
	logs *testkit.LogBuffer
}

func startSpoolMX(t *testing.T, lim Limits, budget int64) *spoolEnv {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := NewSpool(dir, 1024, NewBudget(budget))
	if err != nil {
		t.Fatal(err)
	}
	e := &spoolEnv{dir: dir, logs: &testkit.LogBuffer{}}
	e.addr, _ = startMXWith(t, func(c *Config) { c.Limits, c.Spool, c.Logger = lim, sp, slog.New(slog.NewTextHandler(e.logs, nil)) })
	return e
}

// spoolFiles lists the spool directory.
func (e *spoolEnv) spoolFiles(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	return names
}

// waitLog waits for a log line containing s: the event that follows the spool's clean-up.
func (e *spoolEnv) waitLog(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(e.logs.String(), s) {
			return
		}
	}
	t.Fatalf("no log line %q in:\n%s", s, e.logs.String())
}

func bigBody(n int) string {
	var b strings.Builder
	b.WriteString("From: x@remote.test\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len() < n {
		b.WriteString(line)
	}
	return b.String()
}

// go-smtp's DATA reader fills a 32 KiB buffer before the spool sees any of it: the tests send
// more than that before looking for a spool file.

// TestSpoolLeavesNothing: a message larger than the memory threshold is spooled to a 0600 file
// while it arrives, and the file is gone after a 250, after a 552 for a message that grew too
// big, and after the client vanished in the middle of DATA.
func TestSpoolLeavesNothing(t *testing.T) {
	lim := DefaultLimits
	lim.MaxMessageSize = 64 << 10
	e := startSpoolMX(t, lim, 0)

	c := dialMX(t, e.addr)
	c.cmd("EHLO a.test", "250 ")
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<alice@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	c.c.Write([]byte(bigBody(40 << 10)))
	// Mid-transfer the message is in the spool, readable by us alone.
	var spooled string
	for deadline := time.Now().Add(10 * time.Second); spooled == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if names := e.spoolFiles(t); len(names) == 1 {
			spooled = names[0]
		}
	}
	if spooled == "" {
		t.Fatal("no spool file while a 40 KB message arrives")
	}
	if fi, err := os.Stat(filepath.Join(e.dir, spooled)); err == nil && fi.Mode().Perm() != 0o600 {
		t.Fatalf("spool file mode %v, want 0600", fi.Mode().Perm())
	}
	c.cmd(".", "250 ")
	if names := e.spoolFiles(t); len(names) != 0 {
		t.Fatalf("after 250: spool holds %v", names)
	}

	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<alice@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	c.c.Write([]byte(bigBody(100 << 10)))
	c.cmd(".", "552 5.3.4")
	if names := e.spoolFiles(t); len(names) != 0 {
		t.Fatalf("after 552: spool holds %v", names)
	}

	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<alice@example.test>", "250 ")
	c.cmd("DATA", "354 ")
	c.c.Write([]byte(bigBody(20 << 10)))
	c.c.Close()
	e.waitLog(t, "smtp transfer interrupted")
	if names := e.spoolFiles(t); len(names) != 0 {
		t.Fatalf("after a disconnect mid-DATA: spool holds %v", names)
	}
}

// TestSpoolBudget: with the server-wide budget taken by one transfer in progress, a second
// message is refused with 452 4.3.1 (try later), not held; once the first is done, the budget
// is back.
func TestSpoolBudget(t *testing.T) {
	e := startSpoolMX(t, DefaultLimits, 48<<10)
	first := dialMX(t, e.addr)
	first.cmd("EHLO a.test", "250 ")
	first.cmd("MAIL FROM:<x@remote.test>", "250 ")
	first.cmd("RCPT TO:<alice@example.test>", "250 ")
	first.cmd("DATA", "354 ")
	big := bigBody(40 << 10) // go-smtp hands DATA over in 32 KiB reads
	first.c.Write([]byte(big))
	for deadline := time.Now().Add(10 * time.Second); len(e.spoolFiles(t)) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("first message never reached the spool")
		}
	}

	second := dialMX(t, e.addr)
	second.cmd("EHLO b.test", "250 ")
	second.cmd("MAIL FROM:<x@remote.test>", "250 ")
	second.cmd("RCPT TO:<alice@example.test>", "250 ")
	second.cmd("DATA", "354 ")
	second.c.Write([]byte(big))
	second.cmd(".", "452 4.3.1")

	first.cmd(".", "250 ")
	second.cmd("MAIL FROM:<x@remote.test>", "250 ")
	second.cmd("RCPT TO:<alice@example.test>", "250 ")
	second.cmd("DATA", "354 ")
	second.c.Write([]byte(big))
	second.cmd(".", "250 ")
}

// TestSpoolRemovesStaleFiles: files a killed server left in the spool are removed when the spool
// opens; other files are left alone.
func TestSpoolRemovesStaleFiles(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, spoolPrefix+"12345")
	other := filepath.Join(dir, "README")
	for _, f := range []string{stale, other} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewSpool(dir, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale spool file still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("unrelated file removed: %v", err)
	}
}

// TestSpoolReceiveNormalises: what the spool holds is the normalised message, whether it stayed
// in memory or went to a file, and ReadAt serves any range of it.
func TestSpoolReceiveNormalises(t *testing.T) {
	sp, err := NewSpool(t.TempDir(), 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"a\nb\n", strings.Repeat("line\n", 100)} {
		b, err := sp.Receive(strings.NewReader(in), 0)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ReplaceAll(in, "\n", "\r\n")
		got := make([]byte, b.Size())
		if _, err := b.ReadAt(got, 0); err != nil && b.Size() > 0 {
			t.Fatal(err)
		}
		if !bytes.Equal(got, []byte(want)) || b.Spooled() != (len(want) > 8) {
			t.Fatalf("spooled=%v %q, want %q", b.Spooled(), got, want)
		}
		b.Close()
	}
}
