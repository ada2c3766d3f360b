package server_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"mailstead/mailtest"
	"mailstead/server"
)

// mailstead runs the binary on dir and returns its output and exit status.
func mailstead(t *testing.T, dir, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(mailtest.Binary(t), append(args, "--data", dir)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestSetupIsAllOrNothing: `mailstead setup` wants a fully qualified hostname, an admin at the
// domain and a password the rule accepts, stores everything in one transaction or nothing, and
// on a directory that is set up already says so and changes nothing.
func TestSetupIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	empty := func(what string) {
		t.Helper()
		st, err := server.OpenStore(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ds, _ := st.Domains(context.Background())
		as, _ := st.Accounts(context.Background())
		h, set, _ := st.SettingValue(context.Background(), "hostname")
		if len(ds)+len(as) > 0 || set {
			t.Errorf("after %s: %d domains, %d accounts, hostname %q stored", what, len(ds), len(as), h)
		}
	}
	for _, tc := range []struct {
		what, pw string
		args     []string
	}{
		{"a hostname that is not fully qualified", "a good password", []string{"--hostname", "x", "--domain", "a.test", "--admin", "me@a.test"}},
		{"an admin in another domain", "a good password", []string{"--hostname", "mail.a.test", "--domain", "a.test", "--admin", "me@b.test"}},
		{"a short password", "short", []string{"--hostname", "mail.a.test", "--domain", "a.test", "--admin", "me@a.test"}},
	} {
		if out, code := mailstead(t, dir, tc.pw+"\n", append([]string{"setup"}, tc.args...)...); code != 2 {
			t.Errorf("setup with %s: exit %d, want 2\n%s", tc.what, code, out)
		}
		empty(tc.what)
	}
	args := []string{"setup", "--hostname", "mail.a.test", "--domain", "a.test", "--admin", "me@a.test"}
	if out, code := mailstead(t, dir, "a good password\n", args...); code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, out)
	}
	st, err := server.OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys, _ := st.KVKeys(ctx, "dkim/a.test/")
	ids, ok, _ := st.IsLocalAddress(ctx, "postmaster@a.test")
	me, _ := st.AccountByAddress(ctx, "me@a.test")
	if len(keys) != 2 || !ok || len(ids) != 1 || ids[0] != me.ID || !me.IsAdmin {
		t.Errorf("after setup: %d DKIM keys, postmaster to %v, admin %+v", len(keys), ids, me)
	}
	st.Close()
	out, code := mailstead(t, dir, "another password\n", "setup", "--hostname", "mx.b.test", "--domain", "b.test", "--admin", "you@b.test")
	if code == 0 || !strings.Contains(out, "already set up") {
		t.Errorf("second setup: exit %d\n%s", code, out)
	}
	if out, _ := mailstead(t, dir, "", "settings", "get", "hostname"); strings.TrimSpace(out) != "mail.a.test" {
		t.Errorf("hostname after the refused second setup: %q", out)
	}
	if out, _ := mailstead(t, dir, "", "domain", "list"); strings.TrimSpace(out) != "a.test" {
		t.Errorf("domains after the refused second setup: %q", out)
	}
}

// TestSecretSetting: a secret setting is read from stdin, never from the command line, is not
// echoed, and is listed masked.
func TestSecretSetting(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	dir := srv.Opts.Dir
	const secret = "s3cret-relay-pw"
	if out, code := mailstead(t, dir, "", "settings", "set", "queue.smarthost_password", secret); code != 2 || strings.Contains(out, secret) {
		t.Errorf("secret on the command line: exit %d\n%s", code, out)
	}
	if v, set, _ := srv.Store().SettingValue(context.Background(), "queue.smarthost_password"); set {
		t.Fatalf("secret from the command line stored: %q", v)
	}
	out, code := mailstead(t, dir, secret+"\n", "settings", "set", "queue.smarthost_password")
	if code != 0 || strings.Contains(out, secret) {
		t.Errorf("secret on stdin: exit %d\n%s", code, out)
	}
	if v, _, _ := srv.Store().SettingValue(context.Background(), "queue.smarthost_password"); v != secret {
		t.Errorf("stored secret %q", v)
	}
	// A setting read at start only says so when it is changed.
	if out, code := mailstead(t, dir, "", "settings", "set", "smtp.idle_timeout", "10m"); code != 0 || !strings.Contains(out, "next restart") {
		t.Errorf("settings set smtp.idle_timeout: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"settings", "list"}, {"settings", "get", "queue.smarthost_password"}} {
		out, _ := mailstead(t, dir, "", args...)
		if strings.Contains(out, secret) || !strings.Contains(out, "(set)") {
			t.Errorf("%v shows the secret or not that it is set:\n%s", args, out)
		}
	}
}
