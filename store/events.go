package store

import "sync"

// EventKind says what changed.
type EventKind int

const (
	// MessageAdded: a message was delivered, appended, copied or moved into MailboxID.
	MessageAdded EventKind = iota + 1
	// FlagsChanged: the flags of message UIDs[0] in MailboxID are now Flags.
	FlagsChanged
	// MessagesExpunged: UIDs left MailboxID (expunge, move, POP3 delete, admin delete).
	MessagesExpunged
	// MailboxCreated, MailboxDeleted, MailboxRenamed: the account's mailbox list changed.
	MailboxCreated
	MailboxDeleted
	MailboxRenamed
	// AccountChanged: an account was removed or its credentials changed; sessions may need to end.
	AccountChanged
	// SettingChanged: the setting Name was stored (or reset to its default).
	SettingChanged
	// QueueDue: queue entries were committed or made due now (a delivery with remote
	// recipients, a DSN, a retry from the CLI, the admin page or the API). The queue wakes on it,
	// whichever path made the change.
	QueueDue
)

// Event describes one committed change. Events are published after their commit, in commit order,
// so a subscriber that applies them in order keeps an exact replica of a mailbox's UID list.
type Event struct {
	Kind      EventKind
	AccountID int64
	MailboxID int64
	UIDs      []uint32
	Flags     []string // FlagsChanged and MessageAdded: the message's complete flag set
	ModSeq    int64
	Name      string // mailbox name (created, renamed: the new name); SettingChanged: the key
	// MessageAdded: how the message came (the junk filter learns from moves, not deliveries),
	// and for a copy or move the mailbox it came from.
	Origin      Origin
	FromMailbox int64
}

// Origin is how a message arrived in a mailbox.
type Origin int

const (
	FromDelivery Origin = iota + 1 // SMTP, LMTP, DSN: Store.Deliver
	FromAppend                     // IMAP APPEND
	FromCopy                       // IMAP COPY
	FromMove                       // IMAP MOVE
	FromImport                     // mailbox import
)

type hub struct {
	mu   sync.RWMutex
	next int
	subs map[int]func(Event)
}

// Subscribe registers fn to be called with every event after its commit, in commit order, from the
// writer goroutine. fn must not block and must not call updateOnce. Cancel stops delivery.
func (s *Store) Subscribe(fn func(Event)) (cancel func()) {
	h := &s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[int]func(Event){}
	}
	id := h.next
	h.next++
	h.subs[id] = fn
	return func() {
		h.mu.Lock()
		delete(h.subs, id)
		h.mu.Unlock()
	}
}

func (h *hub) publish(ev Event) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, fn := range h.subs {
		fn(ev)
	}
}
