package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailstead/mailtest/testkit"
)

// TestSetupTightensDataDirectory: `mailstead setup` on a data directory that exists with mode
// 0755 leaves it 0700 with every file in it 0600.
func TestSetupTightensDataDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o755)
	os.Chmod(dir, 0o755)
	var out, errOut bytes.Buffer
	code := run([]string{"setup", "--hostname", "mail.example.org", "--domain", "example.org", "--admin", "me@example.org", "--data", dir},
		strings.NewReader("correct horse battery staple\n"), &out, &errOut)
	if code != 0 {
		t.Fatalf("setup exit %d: %s%s", code, out.String(), errOut.String())
	}
	testkit.CheckPrivateDir(t, dir)
}

// TestCLIUsageErrors: every malformed command line prints its usage and exits 2, before any
// password is read and without a Go error text.
func TestCLIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"account", "add"}, "a long password\n", "usage: mailstead account add ADDRESS"},
		{[]string{"account", "add", "not-an-address"}, "a long password\n", `"not-an-address" is not an email address`},
		{[]string{"account", "add", "me@example.org"}, "", "the password is read from stdin, which was empty"},
		{[]string{"account", "passwd"}, "", "usage: mailstead account passwd ADDRESS"},
		{[]string{"account"}, "", "usage: mailstead account"},
		{[]string{"setup", "--hostname", "mail.example.org"}, "a long password\n", "usage: mailstead setup --hostname FQDN"},
		{[]string{"--port-offset", "abc", "serve"}, "", `--port-offset "abc" is not a whole number`},
		{[]string{"domain"}, "", "usage: mailstead domain"},
		{[]string{"alias", "add", "x@example.org"}, "", "usage: mailstead alias add"},
		{[]string{"import", "mbox"}, "", "usage: mailstead import"},
		{[]string{"backup"}, "", "usage: mailstead backup DEST"},
		{[]string{"no-such-command"}, "", "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append(tt.args, "--data", dir), strings.NewReader(tt.stdin), &out, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut.String(), tt.want)
			}
			if strings.Contains(errOut.String(), "strconv") || strings.Contains(errOut.String(), "password:") {
				t.Errorf("stderr %q", errOut.String())
			}
		})
	}
}

// TestCLIErrorsNameTheCause: a failing command says what is wrong once, and exits 1.
func TestCLIErrorsNameTheCause(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code := run([]string{"setup", "--hostname", "mail.example.org", "--domain", "example.org", "--admin", "me@example.org", "--data", dir},
		strings.NewReader("correct horse battery staple\n"), &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("setup exit %d", code)
	}
	tmp := t.TempDir()
	notMbox := filepath.Join(tmp, "notes.txt")
	os.WriteFile(notMbox, []byte("hello\nworld\nthird\n"), 0o600)
	full := filepath.Join(tmp, "full")
	os.Mkdir(full, 0o700)
	os.WriteFile(filepath.Join(full, "mine.txt"), []byte("x"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"import", "mbox", "nobody@example.org", notMbox}, "account nobody@example.org: not found"},
		{[]string{"import", "mbox", "me@example.org", notMbox}, "not an mbox file"},
		{[]string{"backup", full}, "is not empty"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append(tt.args, "--data", dir), strings.NewReader(""), &out, &errOut)
			msg := errOut.String()
			if code != 1 || !strings.Contains(msg, tt.want) || strings.Count(msg, tt.want) != 1 {
				t.Errorf("exit %d, stderr %q; want 1 and %q once", code, msg, tt.want)
			}
			if strings.Count(msg, "account nobody@example.org") > 1 {
				t.Errorf("the account is named twice: %q", msg)
			}
		})
	}
}

// TestCLIAccountGuardRails: on the command line (the database opened directly) the only admin
// is neither removed nor demoted, an account holding mail goes only with --force and the output
// names its aliases, and admin rights are given with add --admin and account admin.
func TestCLIAccountGuardRails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cli := func(stdin string, args ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		code := run(append(args, "--data", dir), strings.NewReader(stdin), &out, &out)
		return code, out.String()
	}
	if code, out := cli("correct horse battery staple\n", "setup", "--hostname", "mail.example.org", "--domain", "example.org", "--admin", "me@example.org"); code != 0 {
		t.Fatalf("setup: %d %s", code, out)
	}
	mbox := filepath.Join(t.TempDir(), "one.mbox")
	os.WriteFile(mbox, []byte("From x@remote.test Thu Jan  1 00:00:00 2020\nSubject: hi\n\nhi\n"), 0o600)
	steps := []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"", []string{"account", "remove", "me@example.org", "--force"}, 1, "is the only admin"},
		{"", []string{"account", "admin", "me@example.org", "off"}, 1, "is the only admin"},
		{"", []string{"account", "admin", "me@example.org", "maybe"}, 2, "usage: mailstead account"},
		{"", []string{"account", "remove", "me@example.org", "--forse"}, 2, "usage: mailstead account"},
		{"bob password 1\n", []string{"account", "add", "bob@example.org", "--admin"}, 0, "added account bob@example.org (admin)"},
		{"", []string{"account", "admin", "bob@example.org", "off"}, 0, "admin rights of bob@example.org: off"},
		{"", []string{"account", "admin", "me@example.org", "off"}, 1, "is the only admin"},
		{"", []string{"account", "admin", "bob@example.org", "on"}, 0, "admin rights of bob@example.org: on"},
		{"", []string{"import", "mbox", "me@example.org", mbox}, 0, "imported 1"},
		{"", []string{"account", "remove", "me@example.org"}, 1, "holds 1 message(s)"},
		{"", []string{"account", "remove", "me@example.org", "--force"}, 0, "postmaster@example.org"},
		{"", []string{"account", "remove", "bob@example.org"}, 1, "is the only admin"},
	}
	for _, s := range steps {
		code, out := cli(s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Errorf("%v: exit %d %q; want %d and %q", s.args, code, out, s.code, s.want)
		}
	}
	if code, out := cli("", "account", "list"); code != 0 || out != "bob@example.org (admin)\n" {
		t.Errorf("accounts left: %q", out)
	}
}
