package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestQuotaEveryPathThatAddsMail: one check in the store write holds the limit over the whole
// account for delivery, APPEND, COPY and import; a refused write commits nothing, a MOVE inside
// the account is not counted twice, and Quota reports the use.
func TestQuotaEveryPathThatAddsMail(t *testing.T) {
	ctx := context.Background()
	st := openTest(t)
	a := testAccount(t, st, "quota@example.test")
	if err := st.SetQuota(ctx, a.Address, 1000); err != nil {
		t.Fatal(err)
	}
	body := func(n int) []byte { return []byte("Subject: q\r\n\r\n" + strings.Repeat("x", n-16) + "\r\n") }
	deliver := func(msg []byte) error {
		_, err := st.Deliver(ctx, &Delivery{MailFrom: "x@remote.test", Data: msg, Local: []LocalRecipient{{AccountID: a.ID}}})
		return err
	}
	inbox, err := st.MailboxByName(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	archive, err := st.MailboxByName(ctx, a.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(body(600)); err != nil {
		t.Fatalf("first delivery within quota: %v", err)
	}
	var qe *QuotaError
	for _, tc := range []struct {
		path string
		add  func() error
	}{
		{"delivery", func() error { return deliver(body(500)) }},
		{"APPEND", func() error { _, _, err := st.Append(ctx, archive.ID, body(500), nil, time.Time{}); return err }},
		{"COPY", func() error { _, err := st.CopyMessages(ctx, inbox.ID, archive.ID, []uint32{1}); return err }},
		{"import", func() error {
			_, err := st.Import(ctx, a.ID, []ImportMessage{{Mailboxes: []string{"Imported"}, Data: body(500)}})
			return err
		}},
	} {
		if err := tc.add(); !errors.Is(err, ErrOverQuota) || !errors.As(err, &qe) || qe.Limit != 1000 || qe.Used != 600 {
			t.Errorf("%s over quota: %v, want a QuotaError of 600 used, limit 1000", tc.path, err)
		}
	}
	if n, _ := st.CountRows(ctx, "messages"); n != 1 {
		t.Errorf("%d messages after refused writes, want 1", n)
	}
	if _, err := st.MoveMessages(ctx, inbox.ID, archive.ID, []uint32{1}); err != nil {
		t.Errorf("MOVE inside the account: %v", err)
	}
	if err := deliver(body(400)); err != nil {
		t.Errorf("delivery up to the limit exactly: %v", err)
	}
	if q, err := st.Quota(ctx, a.ID); err != nil || q.Used != 1000 || q.Limit != 1000 {
		t.Errorf("Quota = %+v %v, want 1000 of 1000", q, err)
	}
	if err := st.SetQuota(ctx, a.Address, 0); err != nil {
		t.Fatal(err)
	}
	if err := deliver(body(5000)); err != nil {
		t.Errorf("unlimited account: %v", err)
	}
}
