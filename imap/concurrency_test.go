package imap

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Ten clients append, flag, copy and expunge in one mailbox at once. No command may fail, and
// afterwards every client's view (sequence numbers, UIDs, flags) equals the store's.
func TestTenClientsOneMailbox(t *testing.T) {
	e := newEnv(t, nil)
	const clients, rounds = 10, 15
	cs := make([]*imapclient.Client, clients)
	for i := range cs {
		cs[i] = e.login(t, alice, alicePW, nil)
		if _, err := cs[i].Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds*8)
	for i, c := range cs {
		wg.Add(1)
		go func(i int, c *imapclient.Client) {
			defer wg.Done()
			fail := func(what string, err error) {
				errs <- fmt.Errorf("client %d %s: %w", i, what, err)
			}
			for r := 0; r < rounds; r++ {
				msg := testMessage(fmt.Sprintf("c%d-r%d", i, r), "concurrent body")
				cmd := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.Flag(fmt.Sprintf("k%d", i))}})
				cmd.Write(msg)
				cmd.Close()
				data, err := cmd.Wait()
				if err != nil {
					fail("APPEND", err)
					return
				}
				if err := c.Noop().Wait(); err != nil {
					fail("NOOP", err)
					return
				}
				uid := imap.UIDSetNum(data.UID)
				if _, err := c.Store(uid, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
					fail("STORE", err)
				}
				if _, err := c.Copy(uid, "Archive").Wait(); err != nil {
					fail("COPY", err)
				}
				if r%2 == 0 {
					if _, err := c.Store(uid, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
						fail("STORE \\Deleted", err)
					}
					if _, err := c.UIDExpunge(uid).Collect(); err != nil {
						fail("UID EXPUNGE", err)
					}
				}
				if r%5 == 4 {
					if _, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect(); err != nil {
						fail("FETCH 1:*", err)
					}
					if _, err := c.Move(uid, "Trash").Wait(); err != nil {
						fail("MOVE", err)
					}
				}
			}
		}(i, c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.Logf("server log:\n%s", e.logs.String())
	}

	snap, err := e.st.Snapshot(context.Background(), e.mailboxID(t, "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	var want []uint32
	wantFlags := map[uint32][]string{}
	e.st.FetchMeta(context.Background(), snap.ID, snap.UIDs, false, func(m *storeMeta) error {
		want = append(want, m.UID)
		wantFlags[m.UID] = m.Flags
		return nil
	})
	// Per client: 15 appended, 8 expunged (even rounds), round 9 moved away (4 and 14 were
	// expunged before their MOVE, which then moves nothing).
	if len(want) != clients*(rounds-8-1) {
		t.Errorf("%d messages left in INBOX, want %d", len(want), clients*(rounds-8-1))
	}
	for i, c := range cs {
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("client %d final NOOP: %v", i, err)
		}
		if got := c.Mailbox().NumMessages; got != uint32(len(want)) {
			t.Errorf("client %d believes %d messages, store has %d", i, got, len(want))
		}
		if len(want) == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			t.Fatalf("client %d final FETCH: %v", i, err)
		}
		for j, m := range msgs {
			// \Recent is this session's, not the store's (RFC 3501 §2.3.2).
			if m.SeqNum != uint32(j+1) || uint32(m.UID) != want[j] || !slices.Equal(fromFlags(withoutRecent(m.Flags)), wantFlags[want[j]]) {
				t.Errorf("client %d seq %d: UID %d flags %v, store has UID %d flags %v", i, m.SeqNum, m.UID, m.Flags, want[j], wantFlags[want[j]])
				break
			}
		}
	}
	if res, err := e.st.IntegrityCheck(context.Background()); err != nil || res != "ok" {
		t.Errorf("integrity: %v %s", err, res)
	}
}
