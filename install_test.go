package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The install.sh tests run the script below a temporary root (--root), with stand-ins for
// systemctl, useradd and chown on PATH that record their calls, and a stand-in mailstead binary
// that answers `urls`. Nothing outside the temporary directory is touched.

const fakeSystemctl = `#!/bin/sh
echo "systemctl $*" >>"$FAKE_LOG"
case $1 in
is-active) [ -f "$FAKE_STATE/active" ] ;;
start|restart) touch "$FAKE_STATE/active" ;;
disable) rm -f "$FAKE_STATE/active" ;;
esac
`

const fakeUseradd = `#!/bin/sh
echo "useradd $*" >>"$FAKE_LOG"
while [ $# -gt 1 ]; do
	if [ "$1" = --root ]; then r=$2; fi
	shift
done
mkdir -p "$r/etc"
echo "$1:x:998:998::/var/lib/mailstead:/usr/sbin/nologin" >>"$r/etc/passwd"
`

const fakeChown = `#!/bin/sh
echo "chown $*" >>"$FAKE_LOG"
`

const fakeMailstead = `#!/bin/sh
case "$1" in
urls) echo https://203.0.113.5/setup?token=tok-123 ;;
esac
`

type installEnv struct {
	t     *testing.T
	root  string
	bin   string // directory of the stand-ins
	log   string
	state string
}

func newInstallEnv(t *testing.T) *installEnv {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	e := &installEnv{t: t, root: filepath.Join(dir, "root"), bin: filepath.Join(dir, "bin"),
		log: filepath.Join(dir, "calls.log"), state: filepath.Join(dir, "state")}
	for _, d := range []string{e.root, e.bin, e.state} {
		os.MkdirAll(d, 0o755)
	}
	for name, text := range map[string]string{"systemctl": fakeSystemctl, "useradd": fakeUseradd, "chown": fakeChown} {
		if err := os.WriteFile(filepath.Join(e.bin, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "mailstead"), []byte(fakeMailstead), 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs install.sh with the stand-ins first on PATH (or, with path set, only on that PATH).
func (e *installEnv) run(path string, args ...string) (string, error) {
	e.t.Helper()
	if path == "" {
		path = e.bin + ":" + os.Getenv("PATH")
	}
	cmd := exec.Command("sh", append([]string{"install.sh", "--root", e.root}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+path, "FAKE_LOG="+e.log, "FAKE_STATE="+e.state)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *installEnv) calls() string {
	b, _ := os.ReadFile(e.log)
	os.Remove(e.log)
	return string(b)
}

// snapshot records every file below the root: mode, modification time and content hash.
func (e *installEnv) snapshot() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	filepath.WalkDir(e.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		rel, _ := filepath.Rel(e.root, p)
		out[rel] = fmt.Sprintf("%v %d %s", fi.Mode(), fi.ModTime().UnixNano(), sum)
		return nil
	})
	return out
}

func TestInstallScript(t *testing.T) {
	e := newInstallEnv(t)
	fakeBin := filepath.Join(filepath.Dir(e.bin), "mailstead")

	out, err := e.run("", "--binary", fakeBin)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if !strings.Contains(out, "  https://203.0.113.5/setup?token=tok-123\n") {
		t.Errorf("install did not print the setup URL:\n%s", out)
	}
	calls := e.calls()
	for _, want := range []string{"useradd --root " + e.root + " --system", "chown mailstead:mailstead " + e.root + "/var/lib/mailstead",
		"systemctl daemon-reload", "systemctl enable --quiet mailstead.service", "systemctl start mailstead.service"} {
		if !strings.Contains(calls, want) {
			t.Errorf("first run did not call %q; calls:\n%s", want, calls)
		}
	}

	modes := []struct {
		path string
		mode fs.FileMode
	}{
		{"usr/local/bin/mailstead", 0o755},
		{"var/lib/mailstead", fs.ModeDir | 0o700},
		{"etc/systemd/system/mailstead.service", 0o644},
	}
	for _, m := range modes {
		fi, err := os.Stat(filepath.Join(e.root, m.path))
		if err != nil {
			t.Errorf("%s: %v", m.path, err)
			continue
		}
		if fi.Mode() != m.mode {
			t.Errorf("%s: mode %v, want %v", m.path, fi.Mode(), m.mode)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(e.root, "etc/systemd/system/mailstead.service"))
	for _, want := range []string{"User=mailstead", "ExecStart=/usr/local/bin/mailstead serve --data /var/lib/mailstead",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE", "ProtectSystem=strict", "ReadWritePaths=/var/lib/mailstead",
		"NoNewPrivileges=yes", "PrivateTmp=yes", "Restart=on-failure", "WantedBy=multi-user.target"} {
		if !bytes.Contains(unit, []byte(want+"\n")) {
			t.Errorf("unit lacks %q", want)
		}
	}
	contrib, err := os.ReadFile("contrib/systemd/mailstead.service")
	if err != nil || !bytes.Equal(contrib, unit) {
		t.Errorf("contrib/systemd/mailstead.service differs from the unit install.sh writes (%v)", err)
	}

	// A second run with the same binary changes nothing and restarts nothing.
	before := e.snapshot()
	out, err = e.run("", "--binary", fakeBin)
	if err != nil {
		t.Fatalf("second install: %v\n%s", err, out)
	}
	if !strings.Contains(out, "up to date") {
		t.Errorf("second run output:\n%s", out)
	}
	calls = e.calls()
	for _, unwanted := range []string{"useradd", "daemon-reload", "restart", "start mailstead"} {
		if strings.Contains(calls, unwanted) {
			t.Errorf("second run called %q:\n%s", unwanted, calls)
		}
	}
	after := e.snapshot()
	var changed []string
	for k, v := range after {
		if before[k] != v {
			changed = append(changed, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			changed = append(changed, k+" (removed)")
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Errorf("second run changed %v", changed)
	}

	// An upgrade: a new binary is installed and the service restarted.
	newer := filepath.Join(t.TempDir(), "mailstead")
	os.WriteFile(newer, []byte(fakeMailstead+"# newer\n"), 0o755)
	out, err = e.run("", "--binary", newer)
	if err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	if calls := e.calls(); !strings.Contains(calls, "systemctl restart mailstead.service") || strings.Contains(calls, "daemon-reload") {
		t.Errorf("upgrade calls:\n%s", calls)
	}

	// Uninstall removes the service and the binary, never the data.
	os.WriteFile(filepath.Join(e.root, "var/lib/mailstead/mailstead.db"), []byte("mail"), 0o600)
	out, err = e.run("", "--uninstall")
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	if calls := e.calls(); !strings.Contains(calls, "systemctl disable --now mailstead.service") {
		t.Errorf("uninstall calls:\n%s", calls)
	}
	for _, gone := range []string{"etc/systemd/system/mailstead.service", "usr/local/bin/mailstead"} {
		if _, err := os.Stat(filepath.Join(e.root, gone)); err == nil {
			t.Errorf("uninstall left %s", gone)
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.root, "var/lib/mailstead/mailstead.db")); err != nil || string(b) != "mail" {
		t.Errorf("uninstall touched the data: %q %v", b, err)
	}
}

// TestInstallScriptSaysWhatIsMissing: without systemctl, and without Go when it must build, the
// script stops with a sentence naming what to install.
func TestInstallScriptSaysWhatIsMissing(t *testing.T) {
	e := newInstallEnv(t)
	basic := basicPath(t)
	out, err := e.run(basic)
	if err == nil || !strings.Contains(out, "systemd is needed (systemctl not found)") {
		t.Errorf("without systemctl: %v\n%s", err, out)
	}
	os.Symlink(filepath.Join(e.bin, "systemctl"), filepath.Join(basic, "systemctl"))
	os.Symlink(filepath.Join(e.bin, "useradd"), filepath.Join(basic, "useradd"))
	out, err = e.run(basic)
	if err == nil || !strings.Contains(out, "Go is needed to build mailstead") {
		t.Errorf("without go: %v\n%s", err, out)
	}
}

// basicPath makes a PATH directory holding only the basic tools install.sh needs, without
// systemctl and go.
func basicPath(t *testing.T) string {
	basic := filepath.Join(t.TempDir(), "basic")
	os.MkdirAll(basic, 0o755)
	for _, tool := range []string{"sh", "cat", "cmp", "mkdir", "chmod", "cp", "mv", "rm", "mktemp", "dirname", "grep", "sed", "id", "hostname", "sleep", "touch"} {
		if p, err := exec.LookPath(tool); err == nil {
			os.Symlink(p, filepath.Join(basic, tool))
		}
	}
	return basic
}

// TestInstallBuildsFromSource: without --binary the script builds this tree with go build.
func TestInstallBuildsFromSource(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mailstead")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	e := newInstallEnv(t)
	out, err := e.run("")
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	v, err := exec.Command(filepath.Join(e.root, "usr/local/bin/mailstead"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "mailstead ") {
		t.Fatalf("installed binary: %v %s", err, v)
	}
}

// TestInstallScriptShellcheck: install.sh and release.sh are clean under shellcheck (Debian package shellcheck).
func TestInstallScriptShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		if os.Getenv("MAILSTEAD_INTEROP") == "1" {
			t.Fatal("shellcheck not installed (apt-get install shellcheck)")
		}
		t.Skip("shellcheck not installed")
	}
	out, err := exec.Command("shellcheck", "--shell=sh", "install.sh", "release.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck install.sh: %v\n%s", err, out)
	}
}

// TestFail2banFilterMatchesAuthFailedLines: the shipped filter's regexes, with <HOST> as fail2ban
// expands it, find the client address in the "auth failed" lines the services write, in text
// and JSON, and cannot be steered by what a client types as user name.
func TestFail2banFilterMatchesAuthFailedLines(t *testing.T) {
	conf, err := os.ReadFile("contrib/fail2ban/filter.d/mailstead.conf")
	if err != nil {
		t.Fatal(err)
	}
	var regexes []*regexp.Regexp
	inFail := false
	for _, line := range strings.Split(string(conf), "\n") {
		switch {
		case strings.HasPrefix(line, "failregex = "):
			inFail = true
			line = strings.TrimPrefix(line, "failregex = ")
		case inFail && strings.HasPrefix(line, " "):
			line = strings.TrimSpace(line)
		default:
			inFail = false
			continue
		}
		re := strings.ReplaceAll(line, "<HOST>", `(?P<host>[0-9A-Fa-f.:]+)`)
		regexes = append(regexes, regexp.MustCompile(re))
	}
	if len(regexes) != 2 {
		t.Fatalf("%d failregex lines, want 2", len(regexes))
	}
	type failure struct{ service, ip, user string }
	cases := []failure{
		{"imap", "192.0.2.7", "alice@example.com"},
		{"pop3", "2001:db8::25", "bob"},
		{"submission", "198.51.100.9", `x ip=203.0.113.66 "ip":"203.0.113.66"`},
	}
	for _, json := range []bool{false, true} {
		for _, c := range cases {
			var buf bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&buf, nil)
			if json {
				h = slog.NewJSONHandler(&buf, nil)
			}
			slog.New(h).With("service", c.service).Warn("auth failed", "proto", c.service, "ip", c.ip, "user", c.user)
			line := strings.TrimSpace(buf.String())
			host := ""
			for _, re := range regexes {
				if m := re.FindStringSubmatch(line); m != nil {
					host = m[re.SubexpIndex("host")]
				}
			}
			if host != c.ip {
				t.Errorf("filter found %q in %s, want %q", host, line, c.ip)
			}
		}
	}
}

// TestSystemdUnitVerifies: systemd itself reads the shipped unit without a complaint (Debian
// package systemd; skipped without systemd-analyze unless MAILSTEAD_INTEROP=1).
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("MAILSTEAD_INTEROP") == "1" {
			t.Fatal("systemd-analyze not installed (apt-get install systemd)")
		}
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile("contrib/systemd/mailstead.service")
	if err != nil {
		t.Fatal(err)
	}
	// ExecStart must name an existing file; everything else is checked as shipped.
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true command")
	}
	dir := t.TempDir()
	text := strings.ReplaceAll(string(unit), "ExecStart=/usr/local/bin/mailstead", "ExecStart="+trueBin)
	os.WriteFile(filepath.Join(dir, "mailstead.service"), []byte(text), 0o644)
	cmd := exec.Command("systemd-analyze", "verify", "./mailstead.service")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
