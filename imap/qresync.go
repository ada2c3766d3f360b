package imap

import (
	"context"
	"errors"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// QRESYNC (RFC 7162 §3.2): a client that enabled it names, at SELECT, the UIDVALIDITY and
// MODSEQ it last saw, and gets only what changed since: VANISHED (EARLIER) for the UIDs
// expunged after that MODSEQ (the store keeps them, schema 11) and FETCH for the messages whose
// MODSEQ is higher. From then on expunges are reported as VANISHED, not EXPUNGE.

var _ imapserver.SessionQResync = (*session)(nil)

// qresync reports whether the client enabled QRESYNC.
func (s *session) qresync() bool { return s.conn.EnabledCaps().Has(imap.CapQResync) }

// vanishedWriter adapts a VANISHED writer for a view's sink, or nil without QRESYNC (then
// EXPUNGE responses are sent).
func (s *session) vanishedWriter(write func(imap.UIDSet) error) func([]uint32) error {
	if !s.qresync() {
		return nil
	}
	return func(uids []uint32) error { return write(uidSet(uids)) }
}

// Resync answers SELECT (QRESYNC (uidvalidity modseq [known-uids])) after the SELECT responses
// (RFC 7162 §3.2.5.1). A different UIDVALIDITY means the client's cache is void: nothing more
// is sent and it starts over.
func (s *session) Resync(w *imapserver.FetchWriter, q *imap.SelectQResync) error {
	if s.view == nil || q.UIDValidity != s.selected.UIDValidity {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	vanished, err := s.srv.st.VanishedSince(ctx, s.selected.ID, int64(q.ModSeq))
	if err != nil {
		return s.storeError("qresync", err)
	}
	vanished = slices.DeleteFunc(vanished, func(uid uint32) bool {
		return (q.KnownUIDs != nil && !q.KnownUIDs.Contains(imap.UID(uid))) || s.view.seqOf(uid) > 0
	})
	if len(vanished) > 0 {
		if err := w.WriteVanished(uidSet(vanished)); err != nil {
			return err
		}
	}
	changed, err := s.srv.st.ChangedSince(ctx, s.selected.ID, int64(q.ModSeq))
	if err != nil {
		return s.storeError("qresync", err)
	}
	return s.writeChanged(ctx, w, changed)
}

// writeChanged sends FETCH (UID FLAGS MODSEQ) for each of uids (ascending) the client knows.
func (s *session) writeChanged(ctx context.Context, w *imapserver.FetchWriter, uids []uint32) error {
	uids = slices.DeleteFunc(uids, func(uid uint32) bool { return s.view.seqOf(uid) == 0 })
	options := &imap.FetchOptions{UID: true, Flags: true, ModSeq: true}
	for len(uids) > 0 {
		chunk := uids[:min(fetchChunk, len(uids))]
		uids = uids[len(chunk):]
		metas, err := s.metas(ctx, "qresync fetch", chunk, false)
		if err != nil {
			return err
		}
		for i := range metas {
			if err := s.fetchOne(ctx, w, &metas[i], options, false); err != nil && !errors.Is(err, errExpunged) {
				return err
			}
		}
	}
	return nil
}

// fetchVanished is UID FETCH's VANISHED modifier (RFC 7162 §3.2.6): before the FETCH responses,
// VANISHED (EARLIER) for the UIDs of the requested set expunged after CHANGEDSINCE.
func (s *session) fetchVanished(ctx context.Context, w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	set, isUID := numSet.(imap.UIDSet)
	if !isUID || options.ChangedSince == 0 {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
			Text: "VANISHED needs UID FETCH with CHANGEDSINCE (RFC 7162 §3.2.6)"}
	}
	vanished, err := s.srv.st.VanishedSince(ctx, s.selected.ID, int64(options.ChangedSince))
	if err != nil {
		return s.storeError("fetch vanished", err)
	}
	vanished = slices.DeleteFunc(vanished, func(uid uint32) bool { return !set.Contains(imap.UID(uid)) || s.view.seqOf(uid) > 0 })
	if len(vanished) == 0 {
		return nil
	}
	return w.WriteVanished(uidSet(vanished))
}
