package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailstead/mailtest"
	"mailstead/server"
	"mailstead/store"
)

func junkMessage(from, subject, body string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: alice@example.test\r\nSubject: %s\r\nMessage-ID: <%d@remote.test>\r\n\r\n%s\r\n",
		from, subject, time.Now().UnixNano(), body))
}

// waitJunkTotals waits until the account's filter has trained ham and spam messages.
func waitJunkTotals(t *testing.T, st *store.Store, acc int64, ham, spam int64) {
	t.Helper()
	mailtest.WaitFor(t, 10*time.Second, fmt.Sprintf("junk totals %d/%d", ham, spam), func() bool {
		js, err := st.JunkSettingsOf(context.Background(), acc)
		return err == nil && js.Ham == ham && js.Spam == spam
	})
}

func junkIMAP(t *testing.T, srv *mailtest.Server) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(srv.Addr(server.PortIMAPS), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice@example.test", "alice-password").Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestJunkLearnsFromIMAP: what a client does with mail trains the filter, each message once:
// a client says APPEND, COPY, MOVE or STORE, the account's model now counts it as ham or spam.
func TestJunkLearnsFromIMAP(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	st, acc := srv.Store(), srv.AccountID("alice@example.test")
	c := junkIMAP(t, srv)
	spam := junkMessage("promo@deals.test", "Cheap pills", "discount pills order now")
	ham := junkMessage("bob@remote.test", "Lunch", "shall we meet at noon")
	steps := []struct {
		name      string
		do        func() error
		ham, spam int64
	}{
		{"APPEND into Junk is spam", func() error {
			return appendDone(c, "Junk", spam)
		}, 0, 1},
		{"APPEND into Archive is ham", func() error { return appendDone(c, "Archive", ham) }, 1, 1},
		{"COPY out of Junk into INBOX makes it ham, counted once", func() error {
			if _, err := c.Select("Junk", nil).Wait(); err != nil {
				return err
			}
			_, err := c.Copy(imap.UIDSetNum(1), "INBOX").Wait()
			return err
		}, 2, 0},
		{"STORE $Junk makes it spam again", func() error {
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				return err
			}
			return c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Junk"}}, nil).Close()
		}, 1, 1},
		{"STORE $NotJunk on the Archive copy is ham: no change for the other", func() error {
			if _, err := c.Select("Archive", nil).Wait(); err != nil {
				return err
			}
			return c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$NotJunk"}}, nil).Close()
		}, 1, 1},
		{"MOVE from Archive into Junk is spam", func() error {
			_, err := c.Move(imap.UIDSetNum(1), "Junk").Wait()
			return err
		}, 0, 2},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		waitJunkTotals(t, st, acc, s.ham, s.spam)
	}
}

func appendDone(c *imapclient.Client, mailbox string, msg []byte) error {
	cmd := c.Append(mailbox, int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

// TestJunkBootstrap: when the filter is first on for an account, its existing mail is training:
// Junk as spam, INBOX as ham, Sent as whom the user writes to.
func TestJunkBootstrap(t *testing.T) {
	opts := mailtest.Prepare(t, mailtest.Options{})
	st, err := server.OpenStore(opts.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, _ := st.AccountByAddress(ctx, "alice@example.test")
	for i, use := range []string{"", "", `\Junk`, `\Sent`} {
		d := &store.Delivery{Data: junkMessage(fmt.Sprintf("s%d@remote.test", i), "hello", fmt.Sprintf("message %d", i)),
			Local: []store.LocalRecipient{{AccountID: a.ID, SpecialUse: use}}}
		if _, err := st.Deliver(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	srv := mailtest.Run(t, opts)
	waitJunkTotals(t, srv.Store(), a.ID, 2, 1)
	marks, err := srv.Store().JunkMarks(ctx, a.ID, []string{"addr:alice@example.test"})
	if err != nil || marks["addr:alice@example.test"] == 0 {
		t.Errorf("Sent mail's recipient not marked: %v %v", marks, err)
	}
}
