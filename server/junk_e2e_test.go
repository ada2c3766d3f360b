package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
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
func waitJunkTotals(t *testing.T, st *store.Store, acc int64, ham, spam int64, timeout ...time.Duration) {
	t.Helper()
	mailtest.WaitFor(t, append(timeout, 10*time.Second)[0], fmt.Sprintf("junk totals %d/%d", ham, spam), func() bool {
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
	marks, err := srv.Store().JunkMarks(ctx, a.ID)
	if err != nil || marks["addr:alice@example.test"] == 0 {
		t.Errorf("Sent mail's recipient not marked: %v %v", marks, err)
	}
}

// junkMover moves the message with the given subject from one mailbox to another, the way a
// user's mail client does.
type junkMover func(t *testing.T, srv *mailtest.Server, from, to, subject string)

// goIMAPMove uses go-imap's client: SEARCH by subject, UID MOVE.
func goIMAPMove(t *testing.T, srv *mailtest.Server, from, to, subject string) {
	t.Helper()
	c := junkIMAP(t, srv)
	if _, err := c.Select(from, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: subject}}}, nil).Wait()
	if err != nil || len(res.AllUIDs()) != 1 {
		t.Fatalf("UID SEARCH %q in %s: %v %v", subject, from, err, res)
	}
	if _, err := c.Move(imap.UIDSetNum(res.AllUIDs()...), to).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
}

// pythonIMAPMove uses Python's imaplib over implicit TLS.
func pythonIMAPMove(t *testing.T, srv *mailtest.Server, from, to, subject string) {
	t.Helper()
	python := mailtest.Python(t)
	script := `
import imaplib, ssl, sys
host, port, src, dst, subject = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
m.login("alice@example.test", "alice-password")
typ, _ = m.select(src); assert typ == "OK"
typ, data = m.uid("SEARCH", "HEADER", "Subject", '"' + subject + '"'); assert typ == "OK", data
uids = data[0].split(); assert len(uids) == 1, data
typ, data = m.uid("MOVE", uids[0], dst); assert typ == "OK", data
m.logout()
print("ok")
`
	ip, port, _ := net.SplitHostPort(srv.Addr(server.PortIMAPS))
	out, err := exec.Command(python, "-c", script, ip, port, from, to, subject).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("ok")) {
		t.Fatalf("imaplib move %q %s → %s: %v\n%s", subject, from, to, err, out)
	}
}

// TestJunkFilterEndToEnd: the user moves a message into Junk; the next similar message over
// port 25 lands in Junk with the filter's header; the user moves that one out to INBOX; the
// following one lands in INBOX. A header forged by the sender never survives.
func TestJunkFilterEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		move junkMover
	}{{"go-imap", goIMAPMove}, {"imaplib", pythonIMAPMove}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "imaplib" {
				mailtest.Python(t)
			}
			srv := mailtest.Start(t, mailtest.Options{})
			st, acc := srv.Store(), srv.AccountID("alice@example.test")
			mx := srv.Opts.Addr(25)
			spammy := func(n int) []byte {
				return []byte(fmt.Sprintf("From: Deals <deals@remote.test>\r\nTo: alice@example.test\r\nSubject: Offer %d\r\n"+
					"Message-ID: <offer-%d@offers.test>\r\nX-Mailstead-Junk: 0.00 (forged by the sender)\r\n\r\n"+
					"Cheap replica watches and discount pills, order now at http://offers.test/%d, limited offer %d.\r\n", n, n, n, n))
			}
			land := func(n int, mailbox string) []byte {
				t.Helper()
				imapSMTPSend(t, mx, "deals@remote.test", "alice@example.test", spammy(n))
				for _, mb := range []string{"INBOX", "Junk"} {
					for _, m := range mailtest.Mailbox(t, st, "alice@example.test", mb) {
						if !bytes.Contains(m, []byte(fmt.Sprintf("Subject: Offer %d\r\n", n))) {
							continue
						}
						if mb != mailbox {
							t.Fatalf("offer %d landed in %s, want %s:\n%s", n, mb, mailbox, m)
						}
						if c := bytes.Count(m, []byte("X-Mailstead-Junk:")); c != 1 || bytes.Contains(m, []byte("forged")) {
							t.Fatalf("offer %d has %d filter headers (forged one kept?):\n%s", n, c, m)
						}
						return m
					}
				}
				t.Fatalf("offer %d not delivered", n)
				return nil
			}
			land(1, "INBOX") // nothing learned yet
			tc.move(t, srv, "INBOX", "Junk", "Offer 1")
			waitJunkTotals(t, st, acc, 0, 1)
			m := land(2, "Junk")
			if !bytes.Contains(m, []byte("X-Mailstead-Junk: 0.9")) && !bytes.Contains(m, []byte("X-Mailstead-Junk: 1.00")) {
				t.Errorf("offer 2 in Junk without a high score:\n%s", m)
			}
			tc.move(t, srv, "Junk", "INBOX", "Offer 2")
			waitJunkTotals(t, st, acc, 1, 1)
			m = land(3, "INBOX")
			if !bytes.Contains(m, []byte("sender moved out of Junk before")) {
				t.Errorf("offer 3's header does not say why:\n%s", m)
			}
			// The counter is written every few seconds, off the delivery path.
			mailtest.WaitFor(t, 20*time.Second, "filing counter of 2 inbox and 1 junk", func() bool {
				days, err := st.JunkFiled(context.Background(), acc, 1)
				return err == nil && len(days) == 1 && days[0].Inbox == 2 && days[0].Junk == 1
			})
		})
	}
}
