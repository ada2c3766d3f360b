package imap

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestStressRandomMix: ten sessions on one mailbox run a fixed number of FETCH, STORE,
// EXPUNGE, APPEND and SEARCH commands in a random (seeded) mix, as a stress client does, so
// messages vanish under other sessions' FETCH and SEARCH all the time. Every command must
// succeed (RFC 2180 §4.1: never NO [NONEXISTENT] for a mailbox that exists), and at the end
// every session's view (sequence numbers, UIDs, flags) equals the store's.
func TestStressRandomMix(t *testing.T) {
	e := newEnv(t, nil)
	const clients, ops = 10, 80
	for i := 0; i < 20; i++ {
		e.deliver(t, fmt.Sprintf("seed %d", i))
	}
	cs := make([]*imapclient.Client, clients)
	for i := range cs {
		cs[i] = e.login(t, alice, alicePW, nil)
		if _, err := cs[i].Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients*ops)
	for i, c := range cs {
		wg.Add(1)
		go func(i int, c *imapclient.Client) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 17))
			for op := 0; op < ops; op++ {
				n := c.Mailbox().NumMessages
				seq := imap.SeqSetNum(1 + uint32(rnd.IntN(int(max(n, 1)))))
				var err error
				what := ""
				switch k := rnd.IntN(6); {
				case k == 0 || n == 0:
					what = "APPEND"
					msg := testMessage(fmt.Sprintf("c%d-%d", i, op), "stress body")
					cmd := c.Append("INBOX", int64(len(msg)), nil)
					cmd.Write(msg)
					cmd.Close()
					_, err = cmd.Wait()
				case k == 1:
					what = "FETCH 1:* BODY[]"
					_, err = c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true,
						Envelope: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
				case k == 2:
					what = "STORE"
					_, err = c.Store(seq, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.Flag(fmt.Sprintf("k%d", op%4))}}, nil).Collect()
				case k == 3:
					what = "STORE \\Deleted + EXPUNGE"
					if _, err = c.Store(seq, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err == nil {
						_, err = c.Expunge().Collect()
					}
				case k == 4:
					what = "SEARCH TEXT"
					_, err = c.Search(&imap.SearchCriteria{Text: []string{"stress"}}, nil).Wait()
				default:
					what = "FETCH seq BODY[] (sets \\Seen)"
					_, err = c.Fetch(seq, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
				}
				if err != nil {
					errs <- fmt.Errorf("client %d op %d %s: %w", i, op, what, err)
					return
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
		t.Fatalf("server log:\n%s", e.logs.String())
	}
	snap, err := e.st.Snapshot(context.Background(), e.mailboxID(t, "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	wantFlags := map[uint32][]string{}
	if err := e.st.FetchMeta(context.Background(), snap.ID, snap.UIDs, false, func(m *storeMeta) error {
		wantFlags[m.UID] = m.Flags
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("client %d final NOOP: %v", i, err)
		}
		if got := c.Mailbox().NumMessages; got != uint32(len(snap.UIDs)) {
			t.Errorf("client %d believes %d messages, store has %d", i, got, len(snap.UIDs))
			continue
		}
		if len(snap.UIDs) == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			t.Fatalf("client %d final FETCH: %v", i, err)
		}
		for j, m := range msgs {
			want := snap.UIDs[j]
			if m.SeqNum != uint32(j+1) || uint32(m.UID) != want || !slices.Equal(fromFlags(withoutRecent(m.Flags)), wantFlags[want]) {
				t.Errorf("client %d seq %d: UID %d flags %v, store has UID %d flags %v", i, m.SeqNum, m.UID, m.Flags, want, wantFlags[want])
				break
			}
		}
	}
}
