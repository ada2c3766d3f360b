package server_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"mailstead/mailtest"
)

// TestInteropSCRAM (interop): Python's smtplib, imaplib and poplib, driven by a SCRAM client
// written from RFC 5802 with hashlib and hmac (testdata/scram_client.py), log in with
// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (tls-server-end-point) on submission, IMAP and POP3,
// over STARTTLS and implicit TLS, and PLAIN still works; a channel binding that does not match
// and a wrong password are refused.
func TestInteropSCRAM(t *testing.T) {
	python := mailtest.Python(t)
	srv := mailtest.Start(t, mailtest.Options{Accounts: map[string]string{"alice@example.test": "alice-pw"}})
	services := []struct {
		proto, tls string
		port       int
	}{
		{"smtp", "starttls", 587}, {"smtp", "implicit", 465},
		{"imap", "starttls", 143}, {"imap", "implicit", 993},
		{"pop3", "starttls", 110}, {"pop3", "implicit", 995},
	}
	want := map[string]string{"scram": "ok", "plus": "ok", "plus-wrong-binding": "refused", "wrong-password": "refused", "plain": "ok"}
	cases := []string{"scram", "plus", "plus-wrong-binding", "wrong-password", "plain"}
	// An app password logs in with SCRAM too, in the grouped form the user page shows.
	appPW, _, err := srv.Store().AddAppPassword(context.Background(), srv.AccountID("alice@example.test"), "phone")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("smtp/587 app password", func(t *testing.T) {
		port := strings.TrimPrefix(srv.Opts.Addr(587), srv.Opts.IP+":")
		out, err := exec.Command(python, "testdata/scram_client.py", "smtp", srv.Opts.IP, port, "starttls",
			"alice@example.test", appPW, "scram", "plus", "wrong-password").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "scram ok\n") || !strings.Contains(string(out), "plus ok\n") ||
			!strings.Contains(string(out), "wrong-password refused") {
			t.Fatalf("app password over SCRAM: %v\n%s", err, out)
		}
	})
	for _, sv := range services {
		t.Run(sv.proto+"/"+strconv.Itoa(sv.port), func(t *testing.T) {
			port := strings.TrimPrefix(srv.Opts.Addr(sv.port), srv.Opts.IP+":")
			args := append([]string{"testdata/scram_client.py", sv.proto, srv.Opts.IP, port, sv.tls, "alice@example.test", "alice-pw"}, cases...)
			out, err := exec.Command(python, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("scram_client.py: %v\n%s", err, out)
			}
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 {
					continue
				}
				if f[0] == "mechanisms" {
					if strings.Join(f[1:3], " ") != "SCRAM-SHA-256-PLUS SCRAM-SHA-256" {
						t.Errorf("advertised after TLS: %q, want SCRAM-SHA-256-PLUS SCRAM-SHA-256 first", line)
					}
					continue
				}
				got[f[0]] = strings.Join(f[1:], " ")
			}
			for _, c := range cases {
				if got[c] != want[c] {
					t.Errorf("%s: %q, want %q\n%s", c, got[c], want[c], out)
				}
			}
		})
	}
}
