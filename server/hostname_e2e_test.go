package server_test

import (
	"bytes"
	"testing"

	"mailstead/mailtest"
	"mailstead/server"
)

// TestHostnameChangeTakesEffectWhileRunning: a hostname set through the CLI (the same path as
// the settings page) is used at once for the trace headers and authserv-id of received mail, as
// it is for outbound EHLO, without a restart.
func TestHostnameChangeTakesEffectWhileRunning(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	if _, err := server.Call(srv.Opts.Dir, server.Request{Command: "settings", Args: []string{"set", "hostname", "mx2.example.test"}}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Hostname(); got != "mx2.example.test" {
		t.Fatalf("Hostname() = %q after the change", got)
	}
	if err := send(t, srv.Opts.Addr(25), "x@remote.test", []string{"alice@example.test"}, []byte("From: x@remote.test\r\n\r\nhi\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	got := mailtest.Mailbox(t, srv.Store(), "alice@example.test", "INBOX")[0]
	for _, want := range []string{"by mx2.example.test (mailstead)", "Authentication-Results: mx2.example.test;"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("received message lacks %q:\n%s", want, got)
		}
	}
}
