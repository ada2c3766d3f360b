package server_test

import (
	"context"
	"testing"
	"time"

	"mailstead/mailtest"
	"mailstead/store"
)

// TestRecentMailEvents: deliveries and rejections on port 25 show up in the admin page's recent
// events, with sender, recipient, client and reason.
func TestRecentMailEvents(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	addr := srv.Opts.Addr(25)
	if err := send(t, addr, "x@remote.test", []string{"alice@example.test"}, []byte("From: x@remote.test\r\n\r\nhi\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	if err := send(t, addr, "x@remote.test", []string{"nobody@elsewhere.test"}, []byte("From: x@remote.test\r\n\r\nhi\r\n"), nil); err == nil {
		t.Fatal("relay accepted")
	}
	cv := dial(t, addr)
	cv.cmd("EHLO c.remote.test", "250 ")
	cv.cmd("MAIL FROM:<x@remote.test>", "250 ")
	cv.cmd("RCPT TO:<alice@example.test>", "250 ")
	cv.cmd("DATA", "354 ")
	cv.cmd("From: alice@example.test\r\n\r\nspoof\r\n.", "550 ")

	var got []store.MailEvent
	mailtest.WaitFor(t, 5*time.Second, "recorded events", func() bool {
		var err error
		got, err = srv.Store().RecentMailEvents(context.Background(), "", 10)
		return err == nil && len(got) >= 2
	})
	kinds := map[string]store.MailEvent{}
	for _, ev := range got {
		kinds[ev.Kind] = ev
	}
	rec, ok := kinds[store.MailReceived]
	if !ok || rec.MailFrom != "x@remote.test" || rec.Rcpt != "alice@example.test" || rec.Remote != "127.0.0.1" {
		t.Errorf("received event %+v", rec)
	}
	rej, ok := kinds[store.MailRejected]
	if !ok || rej.MailFrom != "x@remote.test" || rej.Detail == "" {
		t.Errorf("rejected event %+v", rej)
	}
}
