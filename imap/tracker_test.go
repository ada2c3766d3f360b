package imap

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailstead/store"
)

func added(uid uint32, modseq int64) store.Event {
	return store.Event{Kind: store.MessageAdded, UIDs: []uint32{uid}, ModSeq: modseq}
}

func flagsEv(uid uint32, modseq int64, flags ...string) store.Event {
	return store.Event{Kind: store.FlagsChanged, UIDs: []uint32{uid}, Flags: flags, ModSeq: modseq}
}

func expunged(modseq int64, uids ...uint32) store.Event {
	return store.Event{Kind: store.MessagesExpunged, UIDs: uids, ModSeq: modseq}
}

// recorder writes what a view reports as IMAP response lines.
type recorder []string

func (r *recorder) sink(expunge, others bool) sink {
	var s sink
	if others {
		s.exists = func(n uint32) error { *r = append(*r, fmt.Sprintf("%d EXISTS", n)); return nil }
		s.flags = func(seq, uid uint32, f []string, _ int64) error {
			*r = append(*r, fmt.Sprintf("%d FETCH UID %d (%s)", seq, uid, strings.Join(f, " ")))
			return nil
		}
	}
	if expunge {
		s.expunge = func(seq uint32) error { *r = append(*r, fmt.Sprintf("%d EXPUNGE", seq)); return nil }
	}
	return s
}

// The view turns ordered store events into the responses a client must see, in every mode a
// command allows (RFC 9051 §7.5.1).
func TestViewDrain(t *testing.T) {
	// UID 6 was added and expunged before the snapshot.
	snap := store.MailboxSnapshot{Mailbox: store.Mailbox{UIDNext: 7, HighestModSeq: 10}, UIDs: []uint32{1, 2, 3, 4, 5}}
	for _, tc := range []struct {
		name           string
		events         []store.Event
		expunge, other bool
		want           []string
		known          []uint32
		leftPending    int
	}{
		{"events before the snapshot are skipped", []store.Event{added(6, 8), flagsEv(2, 10, `\Seen`), expunged(9, 6)}, true, true,
			nil, []uint32{1, 2, 3, 4, 5}, 0},
		{"adds become one EXISTS", []store.Event{added(7, 11), added(8, 12)}, true, true,
			[]string{"7 EXISTS"}, []uint32{1, 2, 3, 4, 5, 7, 8}, 0},
		{"expunges renumber", []store.Event{expunged(11, 2, 4)}, true, true,
			[]string{"2 EXPUNGE", "3 EXPUNGE"}, []uint32{1, 3, 5}, 0},
		{"flags of a known message", []store.Event{flagsEv(3, 11, `\Flagged`)}, true, true,
			[]string{"3 FETCH UID 3 (\\Flagged)"}, []uint32{1, 2, 3, 4, 5}, 0},
		{"no EXPUNGE during FETCH: stop there", []store.Event{added(7, 11), expunged(12, 1), flagsEv(2, 13, "x")}, false, true,
			[]string{"6 EXISTS"}, []uint32{1, 2, 3, 4, 5, 7}, 2},
		{"only EXPUNGE inside EXPUNGE: defer the rest", []store.Event{added(7, 11), flagsEv(7, 12, "x"), expunged(13, 5)}, true, false,
			[]string{"5 EXPUNGE"}, []uint32{1, 2, 3, 4}, 1},
		{"added then expunged before announced: silent", []store.Event{added(7, 11), expunged(12, 7)}, true, true,
			nil, []uint32{1, 2, 3, 4, 5}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newView(1, false)
			v.load(snap)
			v.known = slices.Clone(snap.UIDs)
			for _, ev := range tc.events {
				v.enqueue(ev)
			}
			var got recorder
			if err := v.drain(got.sink(tc.expunge, tc.other)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(v.known, tc.known) || len(v.pending) != tc.leftPending {
				t.Errorf("got %q known %v pending %d; want %q known %v pending %d", got, v.known, len(v.pending), tc.want, tc.known, tc.leftPending)
			}
		})
	}
	// A change to a UID above anything the view was told of means it missed an add.
	v := newView(1, false)
	v.load(snap)
	v.enqueue(flagsEv(9, 11, "x"))
	var got recorder
	if err := v.drain(got.sink(true, true)); err == nil {
		t.Error("flags for an unknown future UID did not put the view out of step")
	}
	v = newView(1, false)
	v.load(snap)
	v.enqueue(store.Event{Kind: store.MailboxDeleted})
	if err := v.drain(got.sink(true, true)); err == nil || !strings.Contains(err.Error(), "deleted") {
		t.Errorf("deleted mailbox: %v", err)
	}
}

func TestAccountChangeEndsSessions(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login(t, alice, alicePW, nil)
	other := e.login(t, bob, bobPW, nil)
	if err := e.st.SetPassword(context.Background(), alice, "new-secret"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("session survived a password change")
	}
	if err := other.Noop().Wait(); err != nil {
		t.Errorf("another account's session was affected: %v", err)
	}
}

func TestSearchResAndInternationalNames(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login(t, alice, alicePW, nil)
	if err := c.Create("Entwürfe/Privé", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.MailboxByName(context.Background(), e.aliceID, "Entwürfe/Privé"); err != nil {
		t.Errorf("UTF-7 name not stored as UTF-8: %v", err)
	}
	names := listNames(t, c, "", "Entw*", nil)
	if _, ok := names["Entwürfe/Privé"]; !ok {
		t.Errorf("LIST: %v", names)
	}
	for i := 0; i < 4; i++ {
		appendMsg(t, c, "Entwürfe/Privé", testMessage(fmt.Sprintf("s%d", i), "x"), &imap.AppendOptions{Flags: []imap.Flag{imap.Flag(fmt.Sprint("k", i%2))}})
	}
	// imapclient does not send RETURN (SAVE): speak it directly (RFC 5182).
	r := loggedInRaw(t, e)
	r.reply("a", `SELECT "Entw&APw-rfe/Priv&AOk-"`)
	if tagged, all := r.reply("b", "SEARCH RETURN (SAVE) KEYWORD k1"); !strings.HasPrefix(tagged, "b OK") {
		t.Fatal(all)
	}
	_, all := r.reply("c", "FETCH $ (UID)")
	if !strings.Contains(all, "* 2 FETCH (UID 2)") || !strings.Contains(all, "* 4 FETCH (UID 4)") || strings.Contains(all, "UID 1)") {
		t.Errorf("FETCH $:\n%s", all)
	}
	if _, all := r.reply("d", "UID SEARCH UID $ NOT KEYWORD k0"); !strings.Contains(all, "* SEARCH 2 4") {
		t.Errorf("SEARCH UID $:\n%s", all)
	}
}

// Messages stored without ENVELOPE and BODYSTRUCTURE (no Describe hook, or older data) are
// parsed when fetched.
func TestFetchWithoutStoredDescription(t *testing.T) {
	e := newEnvStore(t, store.Options{}, nil)
	e.deliver(t, "undescribed")
	c := e.login(t, alice, alicePW, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "undescribed" || msgs[0].BodyStructure.MediaType() != "text/plain" {
		t.Fatalf("FETCH: %v %+v", err, msgs)
	}
	env, bs := Describe([]byte("Subject: x\r\nFrom: a@b.test\r\n\r\nhi\r\n"))
	if e, err := decodeEnvelope(env); err != nil || e.Subject != "x" {
		t.Errorf("Describe envelope: %v %+v", err, e)
	}
	if s, err := decodeStructure(bs); err != nil || s.MediaType() != "text/plain" {
		t.Errorf("Describe structure: %v %+v", err, s)
	}
}
