package imap

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"mailstead/store"
)

// This file keeps each selected session's view of its mailbox in step with the store.
//
// The store publishes committed changes in commit order from its writer goroutine. The hub, the
// server's only subscriber, appends each event to the queue of every view of that mailbox (cheap
// and non-blocking: the writer must never wait for a client). A view holds the UIDs its client
// knows, in sequence-number order, and turns queued events into EXISTS, EXPUNGE and FETCH FLAGS
// responses when the session may send them (RFC 9051 §7.5: no EXPUNGE during FETCH, STORE or
// SEARCH). imapserver's MailboxTracker is not used: it cannot express several new messages at
// once (EncodeSeqNum's known limitation) and panics when out of step; a view knows each UID
// exactly, and when it does fall out of step it ends only its own session.

// maxPending bounds the updates queued for a client that never reads them.
const maxPending = 200000

type hub struct {
	log      *slog.Logger
	mu       sync.Mutex
	views    map[int64]map[*view]bool    // by mailbox ID
	accounts map[int64]map[*session]bool // logged-in sessions by account ID
}

func newHub(log *slog.Logger) *hub {
	return &hub{log: log, views: map[int64]map[*view]bool{}, accounts: map[int64]map[*session]bool{}}
}

// publish runs in the store's writer goroutine. It must not block and must not panic.
func (h *hub) publish(ev store.Event) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("imap event dispatch panicked", "kind", int(ev.Kind), "mailbox", ev.MailboxID, "panic", fmt.Sprint(r))
		}
	}()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch ev.Kind {
	case store.MessageAdded, store.FlagsChanged, store.MessagesExpunged, store.MailboxDeleted:
		for v := range h.views[ev.MailboxID] {
			v.enqueue(ev)
		}
	case store.AccountChanged:
		// Removed account or new password: sessions logged in with the old state end.
		for s := range h.accounts[ev.AccountID] {
			go s.end("Account changed, please log in again")
		}
	}
}

func (h *hub) addView(v *view) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.views[v.mailboxID]
	if m == nil {
		m = map[*view]bool{}
		h.views[v.mailboxID] = m
	}
	m[v] = true
}

func (h *hub) removeView(v *view) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.views[v.mailboxID], v)
	if len(h.views[v.mailboxID]) == 0 {
		delete(h.views, v.mailboxID)
	}
}

func (h *hub) addSession(accountID int64, s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.accounts[accountID]
	if m == nil {
		m = map[*session]bool{}
		h.accounts[accountID] = m
	}
	m[s] = true
}

func (h *hub) removeSession(accountID int64, s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.accounts[accountID], s)
	if len(h.accounts[accountID]) == 0 {
		delete(h.accounts, accountID)
	}
}

// view is one session's view of its selected mailbox.
type view struct {
	mailboxID int64
	readOnly  bool

	// Owned by the session goroutine (and its IDLE goroutine, which never runs concurrently).
	known       []uint32 // UIDs the client knows, index = sequence number - 1
	unannounced []uint32 // added since, not yet announced by EXISTS; all above known
	snapUIDNext uint32   // UIDNEXT of the snapshot known was loaded from
	snapModSeq  int64    // HIGHESTMODSEQ of that snapshot
	seenUID     uint32   // highest UID ever added to this view
	searchRes   []uint32 // SEARCHRES result ($), RFC 5182
	state       sessionState

	notify chan struct{}

	mu      sync.Mutex // guards pending and broken, shared with the hub
	pending []store.Event
	broken  string
}

func newView(mailboxID int64, readOnly bool) *view {
	return &view{mailboxID: mailboxID, readOnly: readOnly, notify: make(chan struct{}, 1)}
}

func (v *view) enqueue(ev store.Event) {
	v.mu.Lock()
	switch {
	case v.broken != "":
	case ev.Kind == store.MailboxDeleted:
		v.broken = "Selected mailbox was deleted"
		v.pending = nil
	case len(v.pending) >= maxPending:
		v.broken = "Too many changes pending, please reconnect"
		v.pending = nil
	default:
		v.pending = append(v.pending, ev)
	}
	v.mu.Unlock()
	select {
	case v.notify <- struct{}{}:
	default:
	}
}

// load sets the view from a snapshot taken after the view was registered with the hub; events
// queued meanwhile that the snapshot already contains are recognised and skipped in drain.
func (v *view) load(snap store.MailboxSnapshot) {
	v.known = snap.UIDs
	v.snapUIDNext = snap.UIDNext
	v.snapModSeq = snap.HighestModSeq
	v.seenUID = snap.UIDNext - 1
}

// errOutOfStep ends a session whose view cannot be kept consistent.
type errOutOfStep struct{ reason string }

func (e errOutOfStep) Error() string { return e.reason }

// sink receives updates from drain. A nil func means that kind of response may not be sent now:
// nil expunge stops at the first expunge (FETCH, STORE, SEARCH); nil exists and flags defer
// them (inside EXPUNGE and MOVE, which may only send EXPUNGE responses).
type sink struct {
	exists  func(n uint32) error
	expunge func(seq uint32) error
	// vanished, when set, reports expunges by UID instead (QRESYNC's VANISHED, RFC 7162
	// §3.2.10); it goes with expunge, which is then unused.
	vanished func(uids []uint32) error
	flags    func(seq, uid uint32, flags []string, modseq int64) error
}

// lastUID is the highest UID this view has ever been told about, expunged or not. A change to a
// UID above it means an add was missed.
func (v *view) lastUID() uint32 { return v.seenUID }

// seqOf returns the client's sequence number of uid, or 0 if the client does not know it.
func (v *view) seqOf(uid uint32) uint32 {
	i, ok := slices.BinarySearch(v.known, uid)
	if !ok {
		return 0
	}
	return uint32(i + 1)
}

// drain applies queued events to the view and reports them through out.
func (v *view) drain(out sink) error {
	v.mu.Lock()
	if v.broken != "" {
		reason := v.broken
		v.mu.Unlock()
		return errOutOfStep{reason}
	}
	items := v.pending
	v.pending = nil
	v.mu.Unlock()

	var deferred []store.Event
	var stopAt = -1
	var err error
loop:
	for i, ev := range items {
		switch ev.Kind {
		case store.MessageAdded:
			uid := ev.UIDs[0]
			if uid < v.snapUIDNext || uid <= v.lastUID() {
				continue // already in the snapshot
			}
			v.unannounced = append(v.unannounced, uid)
			v.seenUID = uid
		case store.FlagsChanged:
			if ev.ModSeq <= v.snapModSeq {
				continue
			}
			if out.flags == nil {
				deferred = append(deferred, ev)
				continue
			}
			uid := ev.UIDs[0]
			if seq := v.seqOf(uid); seq > 0 {
				if err = out.flags(seq, uid, ev.Flags, ev.ModSeq); err != nil {
					break loop
				}
			} else if _, ok := slices.BinarySearch(v.unannounced, uid); !ok && uid > v.lastUID() {
				return errOutOfStep{fmt.Sprintf("flags of UID %d that this session never saw added", uid)}
			}
		case store.MessagesExpunged:
			if out.expunge == nil {
				stopAt = i
				break loop
			}
			if err = v.expunge(ev.UIDs, out.expunge, out.vanished); err != nil {
				break loop
			}
		}
	}
	if _, ok := err.(errOutOfStep); ok {
		return err
	}
	if out.exists != nil && len(v.unannounced) > 0 && err == nil {
		v.known = append(v.known, v.unannounced...)
		v.unannounced = nil
		err = out.exists(uint32(len(v.known)))
	}
	var requeue []store.Event
	requeue = append(requeue, deferred...)
	if stopAt >= 0 {
		requeue = append(requeue, items[stopAt:]...)
	}
	if len(requeue) > 0 {
		v.mu.Lock()
		v.pending = append(requeue, v.pending...)
		v.mu.Unlock()
	}
	return err
}

// expunge removes uids (ascending) from the view, reporting the sequence number each had at the
// moment of its removal.
func (v *view) expunge(uids []uint32, report func(seq uint32) error, vanished func(uids []uint32) error) error {
	var positions []int
	for _, uid := range uids {
		if i, ok := slices.BinarySearch(v.known, uid); ok {
			positions = append(positions, i)
			continue
		}
		if i, ok := slices.BinarySearch(v.unannounced, uid); ok {
			v.unannounced = slices.Delete(v.unannounced, i, i+1)
			continue
		}
		if uid > v.lastUID() {
			return errOutOfStep{fmt.Sprintf("expunge of UID %d that this session never saw added", uid)}
		}
	}
	if len(positions) == 0 {
		return nil
	}
	// Compact known once; report seq = original position + 1 - removals before it.
	var err error
	if vanished != nil {
		gone := make([]uint32, len(positions))
		for k, p := range positions {
			gone[k] = v.known[p]
		}
		err = vanished(gone)
	}
	for k, p := range positions {
		if err == nil && vanished == nil {
			err = report(uint32(p + 1 - k))
		}
	}
	out := v.known[:positions[0]]
	for k, p := range positions {
		end := len(v.known)
		if k+1 < len(positions) {
			end = positions[k+1]
		}
		out = append(out, v.known[p+1:end]...)
	}
	v.known = out
	return err
}
