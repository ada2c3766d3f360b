package server

import (
	"context"

	"mailstead/junk"
	"mailstead/smtp"
	"mailstead/store"
)

// startJunk starts the junk filter's learner: store events in, training out, after each commit
// and off the delivery path. The filter itself is consulted at MX delivery (inbound.go).
func (s *Server) startJunk(bg context.Context) {
	s.junk = &junk.Filter{Store: s.store}
	l := &junk.Learner{Filter: s.junk, Store: s.store, Mail: junkMail{s.store}, Logger: s.log}
	s.junkLearner = l
	cancel := s.store.Subscribe(func(ev store.Event) {
		if c, ok := junkChange(ev); ok {
			l.Notify(c)
		}
	})
	s.goBackground(func() {
		defer cancel()
		l.Run(bg)
	})
}

// junkSettings tells the running filter of a changed account setting (manage.JunkFilter).
type junkSettings struct{ s *Server }

func (j junkSettings) SettingsChanged(accountID int64) {
	if j.s.junk != nil {
		j.s.junk.Forget(accountID)
		j.s.junkLearner.Kick()
	}
}

// classifyJunk files one account's copy of a message received on port 25. The filter failing
// (a database read error) files it in the inbox: the filter may misjudge, never lose or delay.
func (s *Server) classifyJunk(ctx context.Context, accountID int64, msg []byte) smtp.Filing {
	v, ok, err := s.junk.Classify(ctx, accountID, msg)
	if err != nil {
		s.log.Warn("junk classify", "account", accountID, "err", err)
		return smtp.Filing{}
	}
	if !ok {
		return smtp.Filing{}
	}
	return smtp.Filing{Junk: v.Spam, Header: v.Header()}
}

// junkChange translates a store event into what the learner reads.
func junkChange(ev store.Event) (junk.Change, bool) {
	c := junk.Change{AccountID: ev.AccountID, MailboxID: ev.MailboxID, Flags: ev.Flags, FromMailbox: ev.FromMailbox}
	switch ev.Kind {
	case store.MessageAdded:
		c.Kind = junk.Added
	case store.FlagsChanged:
		c.Kind = junk.FlagsChanged
	default:
		return c, false
	}
	if len(ev.UIDs) != 1 {
		return c, false
	}
	c.UID = ev.UIDs[0]
	switch ev.Origin {
	case store.FromDelivery:
		c.Origin = junk.Delivered
	case store.FromAppend:
		c.Origin = junk.Appended
	case store.FromCopy:
		c.Origin = junk.Copied
	case store.FromMove:
		c.Origin = junk.Moved
	case store.FromImport:
		c.Origin = junk.Imported
	}
	return c, true
}

// junkMail adapts the store to the learner's view of mailboxes.
type junkMail struct{ st *store.Store }

func (m junkMail) Mailbox(ctx context.Context, id int64) (junk.Mailbox, error) {
	mb, err := m.st.MailboxByID(ctx, id)
	return junk.Mailbox{ID: mb.ID, Name: mb.Name, SpecialUse: mb.SpecialUse}, err
}

func (m junkMail) Mailboxes(ctx context.Context, accountID int64) ([]junk.Mailbox, error) {
	mbs, err := m.st.Mailboxes(ctx, accountID)
	out := make([]junk.Mailbox, len(mbs))
	for i, mb := range mbs {
		out[i] = junk.Mailbox{ID: mb.ID, Name: mb.Name, SpecialUse: mb.SpecialUse}
	}
	return out, err
}

func (m junkMail) Messages(ctx context.Context, mailboxID int64) ([]junk.Message, error) {
	msgs, err := m.st.Messages(ctx, mailboxID)
	out := make([]junk.Message, len(msgs))
	for i, msg := range msgs {
		out[i] = junk.Message{UID: msg.UID, Flags: msg.Flags}
	}
	return out, err
}

func (m junkMail) Message(ctx context.Context, mailboxID int64, uid uint32) ([]byte, error) {
	return m.st.MessageByUID(ctx, mailboxID, uid)
}
