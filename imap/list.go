package imap

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailstead/store"
)

// listEntry is one name LIST or LSUB may report: a mailbox, or a subscribed name without one.
type listEntry struct {
	name       string
	mb         *store.Mailbox // nil: no mailbox of this name exists
	subscribed bool
}

// List implements LIST and LSUB with RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS and
// RFC 6154 SPECIAL-USE. Special-use attributes are always returned: most clients find their
// Sent and Trash folders by them with a plain LIST.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		// RFC 9051 §6.3.9: an empty pattern asks for the delimiter and root.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: store.MailboxDelim})
	}
	ctx, cancel := s.ctx()
	defer cancel()
	entries, err := s.listEntries(ctx, options.SelectSubscribed)
	if err != nil {
		return err
	}
	matches := func(name string) bool {
		for _, p := range patterns {
			if imapserver.MatchList(name, store.MailboxDelim, ref, p) {
				return true
			}
		}
		return false
	}
	// subscribedBelow reports whether a subscribed name lies under name; with hidden set, only
	// one the patterns do not match (LSUB's \Noselect rule, RFC 3501 §6.3.9).
	subscribedBelow := func(i int, hidden bool) bool {
		return anyBelow(entries, i, func(e listEntry) bool { return e.subscribed && (!hidden || !matches(e.name)) })
	}
	lsub := w.IsLSub()
	for i, e := range entries {
		if !matches(e.name) {
			continue
		}
		data := &imap.ListData{Mailbox: e.name, Delim: store.MailboxDelim}
		if e.mb != nil && options.SelectSpecialUse && e.mb.SpecialUse == "" {
			continue
		}
		lsubParent := false
		if options.SelectSubscribed && !e.subscribed {
			switch {
			case lsub && subscribedBelow(i, true):
				// Exactly RFC 3501 §6.3.9's answer: `* LSUB (\Noselect) "/" news`.
				lsubParent = true
				data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
			case !lsub && options.SelectRecursiveMatch && subscribedBelow(i, false):
				data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
			default:
				continue
			}
		}
		switch {
		case lsubParent:
		case e.mb == nil && lsub:
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		case e.mb == nil:
			// A subscribed name whose mailbox was deleted, or a parent of one (RFC 5258 §3.1).
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		case anyBelow(entries, i, func(e listEntry) bool { return e.mb != nil }):
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		default:
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if e.subscribed && !lsub && (options.SelectSubscribed || options.ReturnSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if e.mb != nil && e.mb.SpecialUse != "" {
			data.Attrs = append(data.Attrs, imap.MailboxAttr(e.mb.SpecialUse))
		}
		if options.ReturnStatus != nil && e.mb != nil {
			st, err := s.srv.st.Status(ctx, e.mb.ID)
			if err != nil {
				return s.storeError("list-status", err)
			}
			data.Status = s.statusData(st, options.ReturnStatus)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// listEntries returns the account's mailboxes by name; for a subscription listing, also the
// subscribed names without a mailbox and their superior names, so a parent can be reported.
func (s *session) listEntries(ctx context.Context, subscriptions bool) ([]listEntry, error) {
	mbs, err := s.srv.st.Mailboxes(ctx, s.account.ID)
	if err != nil {
		return nil, s.storeError("list", err)
	}
	byName := make(map[string]*listEntry, len(mbs))
	for i := range mbs {
		byName[mbs[i].Name] = &listEntry{name: mbs[i].Name, mb: &mbs[i], subscribed: mbs[i].Subscribed}
	}
	if subscriptions {
		orphans, err := s.srv.st.OrphanSubscriptions(ctx, s.account.ID)
		if err != nil {
			return nil, s.storeError("list subscriptions", err)
		}
		for _, name := range orphans {
			if _, ok := byName[name]; !ok {
				byName[name] = &listEntry{name: name, subscribed: true}
			}
			for j := 0; j < len(name); j++ {
				if name[j] == store.MailboxDelim {
					if _, ok := byName[name[:j]]; !ok {
						byName[name[:j]] = &listEntry{name: name[:j]}
					}
				}
			}
		}
	}
	out := make([]listEntry, 0, len(byName))
	for _, e := range byName {
		out = append(out, *e)
	}
	// Byte order puts every inferior name right after its parent's "name/" prefix group.
	slices.SortFunc(out, func(a, b listEntry) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// anyBelow reports whether an inferior name of entries[i] satisfies pred. entries are in byte
// order, so inferiors follow their parent, though other names sharing its prefix may come
// between ("a", "a b", "a/c").
func anyBelow(entries []listEntry, i int, pred func(listEntry) bool) bool {
	parent := entries[i].name
	for _, e := range entries[i+1:] {
		if !strings.HasPrefix(e.name, parent) {
			return false
		}
		if strings.HasPrefix(e.name[len(parent):], string(store.MailboxDelim)) && pred(e) {
			return true
		}
	}
	return false
}
