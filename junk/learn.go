package junk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Limits of the model per account (JunkPrune) and of the initial training.
const (
	MaxTokens      = 200_000 // token rows kept per account: a few MB
	MaxTrained     = 100_000 // content keys remembered per account
	bootstrapLimit = 2_000   // newest messages per mailbox used as initial training
	pruneEvery     = 500     // trainings between size checks
	maxBacklog     = 100_000 // changes waiting; beyond this, learning skips (mail is never affected)
)

// ChangeKind is the kind of mailbox change the learner reads.
type ChangeKind int

const (
	Added        ChangeKind = iota + 1 // a message arrived in a mailbox
	FlagsChanged                       // a message's flags are now Flags
)

// Origin is how an added message came.
type Origin int

const (
	Delivered Origin = iota + 1
	Appended
	Copied
	Moved
	Imported
)

// Change is one committed mailbox change, as the store published it.
type Change struct {
	Kind        ChangeKind
	AccountID   int64
	MailboxID   int64
	UID         uint32
	Flags       []string
	Origin      Origin
	FromMailbox int64 // Copied, Moved
}

// Mailbox is what the learner needs to know of a mailbox: its role.
type Mailbox struct {
	ID         int64
	Name       string
	SpecialUse string // RFC 6154, `\Junk`
}

// Role is what a mailbox means for learning.
func (m Mailbox) role() role {
	switch {
	case m.SpecialUse == `\Junk` || strings.EqualFold(m.Name, "Junk") || strings.EqualFold(m.Name, "Spam"):
		return roleJunk
	case m.SpecialUse == `\Sent`:
		return roleSent
	case m.SpecialUse == `\Trash` || m.SpecialUse == `\Drafts`:
		return roleIgnore
	}
	return roleHam
}

type role int

const (
	roleHam role = iota
	roleJunk
	roleSent
	roleIgnore
)

// Mail reads what the learner learns from. The server adapts the store to it.
type Mail interface {
	Mailbox(ctx context.Context, mailboxID int64) (Mailbox, error)
	Mailboxes(ctx context.Context, accountID int64) ([]Mailbox, error)
	// Messages lists a mailbox's UIDs with their flags, oldest first.
	Messages(ctx context.Context, mailboxID int64) ([]Message, error)
	Message(ctx context.Context, mailboxID int64, uid uint32) ([]byte, error)
}

// Message is one message of a mailbox listing.
type Message struct {
	UID   uint32
	Flags []string
}

// LearnStore is what learning writes besides the model.
type LearnStore interface {
	Store
	JunkPrune(ctx context.Context, accountID int64, maxTokens, maxTrained int) (int64, error)
	// JunkUnbootstrapped lists accounts with the filter on whose existing mail was not used yet.
	JunkUnbootstrapped(ctx context.Context) ([]int64, error)
	SetJunkBootstrapped(ctx context.Context, accountID int64, done bool) error
	// AddJunkFiled adds deliveries to an account's per-day counter (day: days since 1970).
	AddJunkFiled(ctx context.Context, accountID, day, inbox, junk int64) error
}

// Learner trains each account's model from what its user does, after the store commit and off
// the delivery path: changes are queued by Notify (which never blocks) and applied by Run.
type Learner struct {
	Filter *Filter
	Store  LearnStore
	Mail   Mail
	Logger *slog.Logger

	mu      sync.Mutex
	queue   []Change
	wake    chan struct{}
	trained map[int64]int // trainings per account since the last prune
	once    sync.Once

	// delivered counts deliveries per mailbox since the last flush of the filing counter.
	delivered map[int64]*filed
}

type filed struct {
	accountID int64
	n         int64
}

// flushEvery is how often delivery counts are written to the filing counter: one small commit
// every few seconds instead of a statement in every delivery.
const flushEvery = 5 * time.Second

func (l *Learner) init() {
	l.once.Do(func() {
		l.wake = make(chan struct{}, 1)
		l.trained = map[int64]int{}
		l.delivered = map[int64]*filed{}
		if l.Logger == nil {
			l.Logger = slog.New(slog.DiscardHandler)
		}
	})
}

// Notify queues a committed change. It is called from the store's writer and must not block.
func (l *Learner) Notify(c Change) {
	l.init()
	if c.Kind == Added && c.Origin == Delivered {
		// Deliveries teach nothing until the user acts on them; they are only counted.
		l.mu.Lock()
		f := l.delivered[c.MailboxID]
		if f == nil {
			f = &filed{accountID: c.AccountID}
			l.delivered[c.MailboxID] = f
		}
		f.n++
		l.mu.Unlock()
		return
	}
	if c.Kind == FlagsChanged && !hasAnyFlag(c.Flags, spamFlags, hamFlags) {
		return
	}
	l.mu.Lock()
	if len(l.queue) < maxBacklog {
		l.queue = append(l.queue, c)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Kick asks Run to look for accounts whose existing mail should be used as training (at start,
// and when the filter is switched on for an account).
func (l *Learner) Kick() {
	l.init()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run applies queued changes until ctx ends.
func (l *Learner) Run(ctx context.Context) {
	l.init()
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	defer l.flushFiled(context.WithoutCancel(ctx))
	for {
		l.bootstrap(ctx)
		for {
			l.mu.Lock()
			batch := l.queue
			l.queue = nil
			l.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				if ctx.Err() != nil {
					return
				}
				if err := l.apply(ctx, c); err != nil && !errors.Is(err, context.Canceled) {
					l.Logger.Warn("junk learn", "account", c.AccountID, "mailbox", c.MailboxID, "uid", c.UID, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		case <-tick.C:
			l.flushFiled(ctx)
		}
	}
}

// flushFiled adds the deliveries counted since the last flush to each account's counter, as
// inbox or Junk by the mailbox they went to.
func (l *Learner) flushFiled(ctx context.Context) {
	l.mu.Lock()
	counts := l.delivered
	l.delivered = map[int64]*filed{}
	l.mu.Unlock()
	type sum struct{ inbox, junk int64 }
	per := map[int64]*sum{}
	for mbID, f := range counts {
		mb, err := l.Mail.Mailbox(ctx, mbID)
		if err != nil {
			continue // deleted since
		}
		r := mb.role()
		s := per[f.accountID]
		if s == nil {
			s = &sum{}
			per[f.accountID] = s
		}
		if r == roleJunk {
			s.junk += f.n
		} else {
			s.inbox += f.n
		}
	}
	day := time.Now().Unix() / 86400
	for acc, s := range per {
		if err := l.Store.AddJunkFiled(ctx, acc, day, s.inbox, s.junk); err != nil {
			l.Logger.Warn("junk counter", "account", acc, "err", err)
		}
	}
}

var (
	spamFlags = []string{"$Junk", "Junk"}                    // RFC 5788 registry; "Junk" is Thunderbird's older spelling
	hamFlags  = []string{"$NotJunk", "NonJunk", `\Answered`} // answering a message says it is wanted
)

func hasAnyFlag(flags []string, sets ...[]string) bool {
	for _, set := range sets {
		for _, f := range set {
			for _, g := range flags {
				if strings.EqualFold(f, g) {
					return true
				}
			}
		}
	}
	return false
}

// apply learns from one change. The decision table:
//
//	appended or imported into Junk, copied or moved there from elsewhere   spam
//	appended or imported elsewhere (not Sent, Trash, Drafts)               ham
//	copied or moved out of Junk (not to Trash)                              ham; sender rescued
//	appended to Sent                                                        recipients and thread known
//	flagged $Junk                                                           spam
//	flagged $NotJunk, or \Answered                                          ham (answered: sender replied to)
func (l *Learner) apply(ctx context.Context, c Change) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r) // one message not learned; the learner goes on
		}
	}()
	mb, err := l.Mail.Mailbox(ctx, c.MailboxID)
	if err != nil {
		return err
	}
	enabled, _, err := l.Store.JunkAccount(ctx, c.AccountID)
	if err != nil || !enabled {
		return err
	}
	var from Mailbox
	if c.FromMailbox != 0 {
		if from, err = l.Mail.Mailbox(ctx, c.FromMailbox); err != nil {
			from = Mailbox{} // gone since: treat as an ordinary mailbox
		}
	}
	type action struct {
		train, spam bool
		sent        bool
		mark        Mark
	}
	var a action
	switch {
	case c.Kind == FlagsChanged && hasAnyFlag(c.Flags, spamFlags):
		a = action{train: true, spam: true}
	case c.Kind == FlagsChanged && hasAnyFlag(c.Flags, hamFlags[:2]):
		a = action{train: true}
	case c.Kind == FlagsChanged && hasAnyFlag(c.Flags, hamFlags[2:]):
		a = action{train: mb.role() != roleJunk, mark: Replied}
	case c.Kind != Added:
		return nil
	case c.Origin == Appended || c.Origin == Imported:
		switch mb.role() {
		case roleJunk:
			a = action{train: true, spam: true}
		case roleHam:
			a = action{train: true}
		case roleSent:
			a = action{sent: true}
		}
	case c.Origin == Copied || c.Origin == Moved:
		switch {
		case mb.role() == roleJunk && from.role() != roleJunk:
			a = action{train: true, spam: true}
		case from.role() == roleJunk && (mb.role() == roleHam || mb.role() == roleSent):
			a = action{train: true, mark: Rescued}
		}
	}
	if !a.train && !a.sent && a.mark == 0 {
		return nil
	}
	msg, err := l.Mail.Message(ctx, c.MailboxID, c.UID)
	if err != nil {
		return nil // expunged before we got to it: nothing to learn
	}
	return l.learn(ctx, c.AccountID, msg, a.train, a.spam, a.sent, a.mark)
}

func (l *Learner) learn(ctx context.Context, accountID int64, msg []byte, train, spam, sent bool, mark Mark) error {
	if sent {
		return l.Filter.NoteSent(ctx, accountID, msg)
	}
	if mark != 0 {
		if err := l.Filter.NoteSender(ctx, accountID, msg, mark); err != nil {
			return err
		}
	}
	if !train {
		return nil
	}
	changed, err := l.Filter.Train(ctx, accountID, msg, spam)
	if err != nil || !changed {
		return err
	}
	l.Logger.Debug("junk trained", "account", accountID, "spam", spam)
	l.trained[accountID]++
	if l.trained[accountID] >= pruneEvery {
		l.trained[accountID] = 0
		if err := l.Filter.Prune(ctx, l.Store, accountID); err != nil {
			return err
		}
	}
	return nil
}

// bootstrap trains every account that has not been trained from its existing mail yet: Junk as
// spam, other mailboxes (not Sent, Trash, Drafts) as ham, Sent as whom the user writes to.
func (l *Learner) bootstrap(ctx context.Context) {
	ids, err := l.Store.JunkUnbootstrapped(ctx)
	if err != nil {
		l.Logger.Warn("junk bootstrap", "err", err)
		return
	}
	for _, id := range ids {
		if err := l.bootstrapAccount(ctx, id); err != nil {
			l.Logger.Warn("junk bootstrap", "account", id, "err", err)
			continue
		}
		if err := l.Store.SetJunkBootstrapped(ctx, id, true); err != nil {
			l.Logger.Warn("junk bootstrap", "account", id, "err", err)
		}
	}
}

func (l *Learner) bootstrapAccount(ctx context.Context, accountID int64) error {
	mbs, err := l.Mail.Mailboxes(ctx, accountID)
	if err != nil {
		return err
	}
	n := 0
	for _, mb := range mbs {
		r := mb.role()
		if r == roleIgnore {
			continue
		}
		msgs, err := l.Mail.Messages(ctx, mb.ID)
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
		msgs = msgs[max(0, len(msgs)-bootstrapLimit):]
		for _, m := range msgs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			data, err := l.Mail.Message(ctx, mb.ID, m.UID)
			if err != nil {
				continue
			}
			spam := r == roleJunk || hasAnyFlag(m.Flags, spamFlags)
			var mark Mark
			if !spam && hasAnyFlag(m.Flags, hamFlags[2:]) {
				mark = Replied
			}
			if err := l.learn(ctx, accountID, data, r != roleSent, spam, r == roleSent, mark); err != nil {
				return err
			}
			n++
		}
	}
	l.Logger.Info("junk bootstrap", "account", accountID, "messages", n)
	return nil
}
