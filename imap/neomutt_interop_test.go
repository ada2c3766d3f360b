package imap

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// tmuxPane runs a full-screen client in a detached tmux session on a socket of its own, so the
// test reads its screen as a user would see it.
type tmuxPane struct {
	t      *testing.T
	tmux   string
	socket string
}

func startPane(t *testing.T, tmux string, env []string, argv ...string) *tmuxPane {
	t.Helper()
	p := &tmuxPane{t: t, tmux: tmux, socket: fmt.Sprintf("mailstead-%d-%d", os.Getpid(), time.Now().UnixNano())}
	args := append([]string{"-L", p.socket, "new-session", "-d", "-x", "200", "-y", "40", "-s", "t"}, argv...)
	cmd := exec.Command(tmux, args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(tmux, "-L", p.socket, "kill-server").Run() })
	return p
}

func (p *tmuxPane) screen() string {
	out, _ := exec.Command(p.tmux, "-L", p.socket, "capture-pane", "-p", "-t", "t").Output()
	return string(out)
}

func (p *tmuxPane) keys(keys ...string) {
	p.t.Helper()
	args := append([]string{"-L", p.socket, "send-keys", "-t", "t"}, keys...)
	if out, err := exec.Command(p.tmux, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("send-keys: %v %s", err, out)
	}
}

// waitFor polls the screen until ok holds; the bound only turns a hang into a failure.
func (p *tmuxPane) waitFor(what string, ok func(screen string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := p.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// indexLine returns the screen line of the message with subject, or "".
func indexLine(screen, subject string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, subject) {
			return l
		}
	}
	return ""
}

// TestInteropNeoMuttQResync: NeoMutt with imap_condstore and imap_qresync keeps INBOX in step
// while another session flags and expunges, and on its next start resynchronises from its
// header cache through QRESYNC (VANISHED (EARLIER) and the changed flags), shown by its own
// protocol log.
func TestInteropNeoMuttQResync(t *testing.T) {
	neomutt := interop(t, "neomutt")
	tmux := interop(t, "tmux")
	e := newEnv(t, func(c *Config) { c.AllowInsecureAuth = true })
	ctx := context.Background()
	inbox := e.mailboxID(t, "INBOX")
	subjects := []string{"alpha-msg", "bravo-msg", "charlie-msg", "delta-msg"}
	for _, s := range subjects {
		if _, _, err := e.st.Append(ctx, inbox, testMessage(s, "body of "+s), []string{`\Seen`}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	rc := fmt.Sprintf(`set imap_user="%s"
set imap_pass="%s"
set folder="imap://%s/"
set spoolfile="+INBOX"
set ssl_starttls=no
set ssl_force_tls=no
set header_cache="%s/hcache"
set imap_condstore=yes
set imap_qresync=yes
set imap_idle=yes
set mail_check=1
set timeout=1
set imap_check_subscribed=no
set sort=subject
set index_format="%%Z %%s"
set confirmappend=no
set quit=yes
set mark_old=no
`, alice, alicePW, e.plain, dir)
	rcPath := filepath.Join(dir, "neomuttrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + dir, "TERM=xterm", "LANG=C.UTF-8"}
	run := func(log string) *tmuxPane {
		return startPane(t, tmux, env, neomutt, "-n", "-F", rcPath, "-d", "5", "-l", filepath.Join(dir, log))
	}

	other := e.login(t, alice, alicePW, nil)
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	change := func(flag, expunge uint32) {
		t.Helper()
		if _, err := other.Store(imap.UIDSetNum(imap.UID(flag)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Store(imap.UIDSetNum(imap.UID(expunge)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
			t.Fatal(err)
		}
		if _, err := other.UIDExpunge(imap.UIDSetNum(imap.UID(expunge))).Collect(); err != nil {
			t.Fatal(err)
		}
	}

	p := run("first.log")
	p.waitFor("the four messages", func(s string) bool {
		return strings.Count(s, "-msg") >= 4 && indexLine(s, "delta-msg") != ""
	})
	// Another session flags bravo (UID 2) and expunges charlie (UID 3); NeoMutt follows.
	change(2, 3)
	p.waitFor("bravo flagged and charlie gone", func(s string) bool {
		p.keys("$") // sync-mailbox: NeoMutt checks the mailbox now
		return strings.Contains(indexLine(s, "bravo-msg"), "!") && indexLine(s, "charlie-msg") == "" &&
			indexLine(s, "alpha-msg") != ""
	})
	p.keys("q")
	p.waitFor("NeoMutt to quit", func(s string) bool { return !strings.Contains(s, "alpha-msg") })

	// While NeoMutt is away: delta (UID 4) flagged, alpha (UID 1) expunged. The next start
	// resynchronises through QRESYNC and shows exactly that.
	change(4, 1)
	p = run("second.log")
	p.waitFor("the resynchronised mailbox", func(s string) bool {
		return strings.Contains(indexLine(s, "delta-msg"), "!") && strings.Contains(indexLine(s, "bravo-msg"), "!") &&
			indexLine(s, "alpha-msg") == "" && indexLine(s, "charlie-msg") == ""
	})
	p.keys("q")
	log, _ := os.ReadFile(filepath.Join(dir, "second.log0"))
	if len(log) == 0 {
		log, _ = os.ReadFile(filepath.Join(dir, "second.log"))
	}
	// NeoMutt resynchronises with SELECT (CONDSTORE) and UID FETCH … (CHANGEDSINCE n VANISHED)
	// (RFC 7162 §3.2.6) from the MODSEQ in its header cache: only changes come back.
	resync := strings.Contains(string(log), "(QRESYNC (") || strings.Contains(string(log), " VANISHED)")
	if !resync || !strings.Contains(string(log), "VANISHED (EARLIER) 1") || strings.Contains(string(log), "UID FETCH 1:* (UID FLAGS)") {
		t.Errorf("second start did not resynchronise with QRESYNC; NeoMutt's protocol log:\n%s", protocolLines(string(log)))
	}
}

// protocolLines keeps the lines of a NeoMutt debug log that show IMAP traffic.
func protocolLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "mutt_socket_write_d()") || strings.Contains(l, "mutt_socket_readln_d()") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
