package imap

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// This file keeps the per-session parts of a selected mailbox that are not in the store's event
// stream: which messages are \Recent for this session, and which keywords it has announced.

// flagRecent is IMAP4rev1's session flag (RFC 3501 §2.3.2); IMAP4rev2 removed it.
const flagRecent = `\Recent`

// sessionState is one selected mailbox's session-local state. It lives in the view, owned by
// the session goroutine.
type sessionState struct {
	claimsRecent bool     // an IMAP4rev1 SELECT: this session takes \Recent from new messages
	recent       []uint32 // sorted UIDs that are \Recent in this session
	recentUpTo   uint32   // highest UID considered for \Recent
	keywords     []string // sorted keywords announced in FLAGS
}

// condStore reports whether the client enabled CONDSTORE (RFC 7162 §3.1): then every FETCH
// response with FLAGS carries MODSEQ.
func (s *session) condStore() bool { return s.conn.EnabledCaps().Has(imap.CapCondStore) }

// rev1 reports whether the session speaks IMAP4rev1, where \Recent exists.
func (s *session) rev1() bool { return !s.conn.EnabledCaps().Has(imap.CapIMAP4rev2) }

// takeRecent gives this session the \Recent messages among the UIDs it knows, up to upTo
// (RFC 3501 §2.3.2: exactly one session sees a message as recent). A read-only (EXAMINE) or
// IMAP4rev2 session takes none; EXAMINE still shows what no session has taken yet, without
// taking it (RFC 3501 §6.3.2).
func (s *session) takeRecent(ctx context.Context, upTo uint32, peek bool) error {
	v := s.view
	if upTo <= v.state.recentUpTo && !peek {
		return nil
	}
	claim := upTo
	if peek {
		claim = 0 // ClaimRecent with 0 only reads the boundary
	}
	first, err := s.srv.st.ClaimRecent(ctx, s.selected.ID, claim)
	if err != nil {
		return s.storeError("claim recent", err)
	}
	i, _ := slices.BinarySearch(v.known, max(first, v.state.recentUpTo+1))
	for _, uid := range v.known[i:] {
		if uid > upTo {
			break
		}
		v.state.recent = append(v.state.recent, uid)
	}
	v.state.recentUpTo = max(v.state.recentUpTo, upTo)
	return nil
}

// numRecent counts this session's \Recent messages still in the mailbox.
func (v *view) numRecent() uint32 {
	n := uint32(0)
	for _, uid := range v.state.recent {
		if v.seqOf(uid) > 0 {
			n++
		}
	}
	return n
}

func (v *view) isRecent(uid uint32) bool {
	_, ok := slices.BinarySearch(v.state.recent, uid)
	return ok
}

// flagsOf is a message's FLAGS as this session reports them: the stored flags, and \Recent in
// an IMAP4rev1 session that holds it.
func (v *view) flagsOf(uid uint32, stored []string) []imap.Flag {
	out := toFlags(stored)
	if v.isRecent(uid) {
		out = append(out, flagRecent)
	}
	return out
}

// withoutRecent drops \Recent from flags a client asks to set: only the server sets it
// (RFC 3501 §2.3.2).
func withoutRecent(flags []imap.Flag) []imap.Flag {
	return slices.DeleteFunc(slices.Clone(flags), func(f imap.Flag) bool { return strings.EqualFold(string(f), flagRecent) })
}

// mailboxFlags is the FLAGS and PERMANENTFLAGS of the selected mailbox (RFC 9051 §7.3.5,
// §7.1): the system flags and every keyword announced; \* because keywords may be created,
// and nothing permanent in a read-only mailbox.
func (v *view) mailboxFlags() (flags, perm []imap.Flag) {
	flags = slices.Clone(systemFlags)
	for _, k := range v.state.keywords {
		flags = append(flags, imap.Flag(k))
	}
	perm = []imap.Flag{}
	if !v.readOnly {
		perm = append(slices.Clone(flags), imap.FlagWildcard)
	}
	return flags, perm
}

// learnKeywords adds the keywords among flags that the client has not been told of, and
// reports whether there were any: then FLAGS and PERMANENTFLAGS must be sent again before the
// message's FLAGS (RFC 9051 §7.3.5: FLAGS lists every flag the mailbox uses).
func (v *view) learnKeywords(flags []string) bool {
	added := false
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			continue
		}
		if i, ok := slices.BinarySearch(v.state.keywords, f); !ok {
			v.state.keywords = slices.Insert(v.state.keywords, i, f)
			added = true
		}
	}
	return added
}
