package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) take() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.evs
	l.evs = nil
	return out
}

func subscribe(t *testing.T, s *Store) *eventLog {
	l := &eventLog{}
	cancel := s.Subscribe(func(ev Event) {
		l.mu.Lock()
		l.evs = append(l.evs, ev)
		l.mu.Unlock()
	})
	t.Cleanup(cancel)
	return l
}

func TestIMAPMailboxHierarchy(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	if _, err := s.CreateMailbox(ctx, alice.ID, "a/b/c", ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "a/b", "a/b/c"} {
		if _, err := s.MailboxByName(ctx, alice.ID, name); err != nil {
			t.Errorf("%s not created: %v", name, err)
		}
	}
	for _, tc := range []struct {
		name string
		want error
	}{
		{"a", ErrExists}, {"inbox", ErrExists}, {"", ErrMailboxName}, {"/x", ErrMailboxName}, {"x//y", ErrMailboxName},
		{"x/", ErrMailboxName}, {"x*", ErrMailboxName}, {"bad\x01", ErrMailboxName},
		{"d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d", ErrMailboxName},
	} {
		if _, err := s.CreateMailbox(ctx, alice.ID, tc.name, ""); !errors.Is(err, tc.want) {
			t.Errorf("create %q: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := s.CreateMailbox(ctx, alice.ID, "All", `\All`); !errors.Is(err, ErrSpecialUse) {
		t.Errorf("create with \\All: %v", err)
	}
	if err := s.DeleteMailbox(ctx, alice.ID, "a/b"); !errors.Is(err, ErrHasChildren) {
		t.Errorf("delete with children: %v", err)
	}
	if err := s.DeleteMailbox(ctx, alice.ID, "INBOX"); !errors.Is(err, ErrCannotDelete) {
		t.Errorf("delete INBOX: %v", err)
	}
	if err := s.RenameMailbox(ctx, alice.ID, "a", "x/y"); err != nil {
		t.Fatal(err)
	}
	mbs, _ := s.Mailboxes(ctx, alice.ID)
	var names []string
	for _, m := range mbs {
		names = append(names, m.Name)
	}
	for _, want := range []string{"x", "x/y", "x/y/b", "x/y/b/c"} {
		if !slices.Contains(names, want) {
			t.Errorf("after rename, %q missing from %v", want, names)
		}
	}
	if slices.Contains(names, "a") {
		t.Errorf("a still listed: %v", names)
	}
	if err := s.RenameMailbox(ctx, alice.ID, "x", "x/y/z"); !errors.Is(err, ErrMailboxName) {
		t.Errorf("rename into own child: %v", err)
	}
	old, _ := s.MailboxByName(ctx, alice.ID, "x/y/b/c")
	if err := s.DeleteMailbox(ctx, alice.ID, "x/y/b/c"); err != nil {
		t.Fatal(err)
	}
	again, err := s.CreateMailbox(ctx, alice.ID, "x/y/b/c", "")
	if err != nil {
		t.Fatal(err)
	}
	if again.UIDValidity == old.UIDValidity {
		t.Errorf("recreated mailbox reuses UIDVALIDITY %d", old.UIDValidity)
	}
	if err := s.SetSubscribed(ctx, alice.ID, "x", false); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.MailboxByName(ctx, alice.ID, "x"); m.Subscribed {
		t.Error("still subscribed")
	}
}

func TestIMAPMessageOperations(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, alice.ID, "INBOX")
	trash, _ := s.MailboxByName(ctx, alice.ID, "Trash")
	log := subscribe(t, s)
	msg := []byte("Subject: hi\r\n\r\nbody\r\n")
	for i := 0; i < 4; i++ {
		v, uid, err := s.Append(ctx, inbox.ID, msg, []string{`\seen`, "Work", "work"}, time.Unix(1700000000, 0))
		if err != nil || v != inbox.UIDValidity || uid != uint32(i+1) {
			t.Fatalf("append: %v %d %d", err, v, uid)
		}
	}
	if evs := log.take(); len(evs) != 4 || evs[0].Kind != MessageAdded || !slices.Equal(evs[0].Flags, []string{`\Seen`, "Work"}) {
		t.Fatalf("append events: %+v", evs)
	}
	res, modseq, err := s.StoreFlags(ctx, inbox.ID, []uint32{1, 2, 9}, FlagsAdd, []string{`\DELETED`})
	if err != nil || len(res) != 2 || modseq == 0 || !slices.Equal(res[0].Flags, []string{`\Seen`, "Work", `\Deleted`}) {
		t.Fatalf("store: %v %+v %d", err, res, modseq)
	}
	if evs := log.take(); len(evs) != 2 || evs[1].Kind != FlagsChanged || evs[1].ModSeq != modseq {
		t.Fatalf("flag events: %+v", evs)
	}
	if _, again, _ := s.StoreFlags(ctx, inbox.ID, []uint32{1}, FlagsAdd, []string{`\Deleted`}); again != 0 {
		t.Errorf("no-op store bumped modseq to %d", again)
	}
	cr, err := s.CopyMessages(ctx, inbox.ID, trash.ID, []uint32{1, 3})
	if err != nil || !slices.Equal(cr.Source, []uint32{1, 3}) || !slices.Equal(cr.Dest, []uint32{1, 2}) || cr.UIDValidity != trash.UIDValidity {
		t.Fatalf("copy: %v %+v", err, cr)
	}
	gone, err := s.Expunge(ctx, inbox.ID, []uint32{2})
	if err != nil || !slices.Equal(gone, []uint32{2}) {
		t.Fatalf("uid expunge: %v %v", err, gone)
	}
	gone, err = s.Expunge(ctx, inbox.ID, nil)
	if err != nil || !slices.Equal(gone, []uint32{1}) {
		t.Fatalf("expunge: %v %v", err, gone)
	}
	mr, err := s.MoveMessages(ctx, inbox.ID, trash.ID, []uint32{3, 4})
	if err != nil || !slices.Equal(mr.Dest, []uint32{3, 4}) {
		t.Fatalf("move: %v %+v", err, mr)
	}
	evs := log.take()
	last := evs[len(evs)-1]
	if last.Kind != MessagesExpunged || last.MailboxID != inbox.ID || !slices.Equal(last.UIDs, []uint32{3, 4}) {
		t.Fatalf("move events: %+v", evs)
	}
	st, err := s.Status(ctx, trash.ID)
	if err != nil || st.Messages != 4 || st.Unseen != 0 || st.Deleted != 1 || st.Size != int64(4*len(msg)) || st.UIDNext != 5 {
		t.Fatalf("status: %v %+v", err, st)
	}
	snap, err := s.Snapshot(ctx, trash.ID)
	if err != nil || !slices.Equal(snap.UIDs, []uint32{1, 2, 3, 4}) || !slices.Equal(snap.Keywords, []string{"Work"}) {
		t.Fatalf("snapshot: %v %+v", err, snap)
	}
	var ids []int64
	if err := s.FetchMeta(ctx, trash.ID, []uint32{2, 4}, true, func(m *MessageMeta) error {
		ids = append(ids, m.ID)
		return nil
	}); err != nil || len(ids) != 2 {
		t.Fatalf("fetch meta: %v %v", err, ids)
	}
	h, err := s.MessageHeader(ctx, ids[0])
	if err != nil || string(h) != "Subject: hi\r\n\r\n" {
		t.Fatalf("header: %v %q", err, h)
	}
	if err := s.DeleteMessages(ctx, trash.ID, append(ids, 999)); err != nil {
		t.Fatal(err)
	}
	if evs := log.take(); len(evs) != 1 || !slices.Equal(evs[0].UIDs, []uint32{2, 4}) {
		t.Fatalf("delete events: %+v", evs)
	}
	// Every copy refers to one of the bodies; expunging all drops the blobs.
	if _, _, err := s.StoreFlags(ctx, trash.ID, []uint32{1, 3}, FlagsReplace, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, trash.ID, nil); err != nil {
		t.Fatal(err)
	}
	var blobs int
	s.db.QueryRow("SELECT count(*) FROM blobs").Scan(&blobs)
	if blobs != 0 {
		t.Errorf("%d blobs left after every message was expunged", blobs)
	}
}

func TestIMAPRenameInbox(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	inbox, _ := s.MailboxByName(ctx, alice.ID, "INBOX")
	for i := 0; i < 3; i++ {
		if _, _, err := s.Append(ctx, inbox.ID, []byte("Subject: x\r\n\r\n"), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	log := subscribe(t, s)
	if err := s.RenameMailbox(ctx, alice.ID, "INBOX", "Old/Inbox"); err != nil {
		t.Fatal(err)
	}
	moved, err := s.MailboxByName(ctx, alice.ID, "Old/Inbox")
	if err != nil {
		t.Fatal(err)
	}
	if snap, _ := s.Snapshot(ctx, moved.ID); !slices.Equal(snap.UIDs, []uint32{1, 2, 3}) || snap.UIDNext != 4 {
		t.Errorf("moved mailbox: %+v", snap)
	}
	after, _ := s.Snapshot(ctx, inbox.ID)
	if len(after.UIDs) != 0 || after.UIDNext != 4 || after.UIDValidity != inbox.UIDValidity {
		t.Errorf("INBOX after rename: %+v", after)
	}
	evs := log.take()
	if last := evs[len(evs)-1]; last.Kind != MessagesExpunged || last.MailboxID != inbox.ID {
		t.Errorf("events: %+v", evs)
	}
}
