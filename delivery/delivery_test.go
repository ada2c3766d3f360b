package delivery

import (
	"context"
	"errors"
	"io"
	"mailstead/mailtest/storetest"
	"strings"
	"testing"
	"time"

	"mailstead/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st := storetest.Open(t, "example.test")
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		storetest.Account(t, st, a, "pw")
	}
	if err := st.AddAlias(context.Background(), "team@example.test", []string{"alice@example.test", "bob@example.test"}); err != nil {
		t.Fatal(err)
	}
	return st
}

func inbox(t *testing.T, st *store.Store, addr string) []string {
	t.Helper()
	ctx := context.Background()
	a, err := st.AccountByAddress(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.MailboxByName(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		data, err := st.MessageData(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(data))
	}
	return out
}

// TestDeliver: one call stores a local copy per account (an alias expanded, each copy with its
// own Return-Path and Delivered-To), queues the remote recipient, and puts Top and the Received:
// line above the message.
func TestDeliver(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	d := New(st, func() string { return "mx.example.test" })
	team, err := d.Resolve(ctx, "Team@Example.test")
	if err != nil || team.Remote || len(team.Accounts) != 2 {
		t.Fatalf("Resolve(team) = %+v, %v", team, err)
	}
	far, err := d.Resolve(ctx, "carol@far.test")
	if err != nil || !far.Remote {
		t.Fatalf("Resolve(carol@far.test) = %+v, %v", far, err)
	}
	if _, err := d.Resolve(ctx, "nobody@example.test"); !errors.Is(err, store.ErrUnknownUser) {
		t.Fatalf("Resolve(nobody) err = %v", err)
	}
	body := "Subject: hi\r\n\r\nhello\r\n"
	env := &Envelope{ID: "abc", MailFrom: "x@far.test",
		Rcpts: []Recipient{team, far, {Address: "bob@example.test"}},
		Trace: &Trace{Helo: "mail.far.test", IP: "192.0.2.1", With: "ESMTPS", At: time.Unix(0, 0)}}
	copies, err := d.Deliver(ctx, env, Message{Top: []byte("X-Top: 1\r\n"), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != 2 {
		t.Fatalf("%d copies, want 2 (bob once, though named twice)", len(copies))
	}
	got := inbox(t, st, "alice@example.test")
	if len(got) != 1 {
		t.Fatalf("alice has %d messages", len(got))
	}
	want := "Return-Path: <x@far.test>\r\nDelivered-To: team@example.test\r\nX-Top: 1\r\nReceived: from mail.far.test ([192.0.2.1])\r\n\tby mx.example.test (mailstead) with ESMTPS id abc;"
	if !strings.HasPrefix(got[0], want) || !strings.HasSuffix(got[0], "\r\n"+body) {
		t.Fatalf("alice's copy:\n%s\nwant it to start with:\n%s", got[0], want)
	}
	q, err := st.QueueList(ctx)
	if err != nil || len(q) != 1 || q[0].Rcpt != "carol@far.test" || q[0].MailFrom != "x@far.test" {
		t.Fatalf("queue %+v, %v", q, err)
	}
}

// TestDeliverRefusesShortBody: a body shorter than its size (a truncated spool file) stores
// nothing.
func TestDeliverRefusesShortBody(t *testing.T) {
	st := openStore(t)
	d := New(st, nil)
	env := &Envelope{ID: "x", Rcpts: []Recipient{{Address: "alice@example.test"}}}
	if _, err := d.Deliver(context.Background(), env, Message{Body: io.NewSectionReader(strings.NewReader("short"), 0, 100)}); err == nil {
		t.Fatal("short body delivered")
	}
	if got := inbox(t, st, "alice@example.test"); len(got) != 0 {
		t.Fatalf("stored %d messages", len(got))
	}
}
