package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"mailstead/message"
	"mailstead/store"
)

// fetchChunk is how many messages' metadata one read fetches: enough to stream quickly, small
// enough that no read transaction stays open while a slow client drains its responses.
const fetchChunk = 512

var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only (EXAMINE)"}

// Select opens a mailbox (RFC 9051 §6.3.2). The view is registered with the hub before the
// snapshot is read, so no change committed in between can be missed.
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.unselect()
	ctx, cancel := s.ctx()
	defer cancel()
	mb, err := s.mailbox(ctx, name)
	if err != nil {
		return nil, err
	}
	v := newView(mb.ID, options.ReadOnly)
	s.srv.hub.addView(v)
	snap, err := s.srv.st.Snapshot(ctx, mb.ID)
	if err != nil {
		s.srv.hub.removeView(v)
		return nil, s.storeError("select", err)
	}
	v.load(snap)
	v.state.keywords = slices.Clone(snap.Keywords)
	s.view, s.selected = v, &snap.Mailbox
	if s.rev1() {
		v.state.claimsRecent = !options.ReadOnly
		if err := s.takeRecent(ctx, snap.UIDNext-1, options.ReadOnly); err != nil {
			s.unselect()
			return nil, err
		}
	}
	flags, perm := v.mailboxFlags()
	data := &imap.SelectData{
		Flags:             flags,
		PermanentFlags:    perm,
		NumMessages:       uint32(len(v.known)),
		NumRecent:         v.numRecent(),
		HighestModSeq:     uint64(snap.HighestModSeq),
		FirstUnseenSeqNum: v.seqOf(snap.FirstUnseen),
		UIDNext:           imap.UID(snap.UIDNext),
		UIDValidity:       snap.UIDValidity,
	}
	if s.conn.EnabledCaps().Has(imap.CapIMAP4rev2) {
		data.List = &imap.ListData{Mailbox: mb.Name, Delim: store.MailboxDelim}
	}
	return data, nil
}

func (s *session) Unselect() error {
	s.unselect()
	return nil
}

func (s *session) unselect() {
	if s.view != nil {
		s.srv.hub.removeView(s.view)
		s.view, s.selected = nil, nil
	}
}

// resolve turns a sequence set, UID set or $ into the sorted UIDs the client means. "*" is the
// last message the client knows; sequence numbers beyond that are a client error.
func (v *view) resolve(numSet imap.NumSet) ([]uint32, error) {
	if imap.IsSearchRes(numSet) {
		var out []uint32
		for _, uid := range v.searchRes {
			if v.seqOf(uid) > 0 {
				out = append(out, uid)
			}
		}
		return out, nil
	}
	var out []uint32
	switch set := numSet.(type) {
	case imap.SeqSet:
		n := uint32(len(v.known))
		for _, r := range set {
			star := r.Start == 0 || r.Stop == 0
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = n
			}
			if stop == 0 {
				stop = n
			}
			if start > stop {
				start, stop = stop, start
			}
			if star {
				if n == 0 {
					continue // "*" in an empty mailbox names nothing
				}
				start, stop = max(min(start, n), 1), min(stop, n)
			}
			if start == 0 || stop > n {
				return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Invalid message sequence number"}
			}
			out = append(out, v.known[start-1:stop]...)
		}
	case imap.UIDSet:
		var maxUID uint32
		if len(v.known) > 0 {
			maxUID = v.known[len(v.known)-1]
		}
		for _, r := range set {
			lo, hi := uint32(r.Start), uint32(r.Stop)
			if lo == 0 {
				lo = maxUID
			}
			if hi == 0 {
				hi = maxUID
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			i, _ := slices.BinarySearch(v.known, lo)
			j, _ := slices.BinarySearch(v.known, hi+1)
			if hi == ^uint32(0) {
				j = len(v.known)
			}
			out = append(out, v.known[i:j]...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// dropOwnFlagEvents removes this session's own flag changes (one MODSEQ) from its queue: the
// command's own FETCH responses already told the client (or .SILENT asked not to).
func (v *view) dropOwnFlagEvents(modseq int64) {
	if modseq == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pending = slices.DeleteFunc(v.pending, func(ev store.Event) bool {
		return ev.Kind == store.FlagsChanged && ev.ModSeq == modseq
	})
}

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	v := s.view
	uids, err := v.resolve(numSet)
	if err != nil {
		return err
	}
	markSeen := false
	if !v.readOnly {
		for _, bs := range options.BodySection {
			markSeen = markSeen || !bs.Peek
		}
		for _, bs := range options.BinarySection {
			markSeen = markSeen || !bs.Peek
		}
	}
	describe := options.Envelope || options.BodyStructure != nil
	ctx, cancel := s.ctx()
	defer cancel()
	if options.Vanished {
		if err := s.fetchVanished(ctx, w, numSet, options); err != nil {
			return err
		}
	}
	for len(uids) > 0 {
		chunk := uids[:min(fetchChunk, len(uids))]
		uids = uids[len(chunk):]
		metas, err := s.metas(ctx, "fetch", chunk, describe)
		if err != nil {
			return err
		}
		if options.ChangedSince > 0 {
			// RFC 7162 §3.1.4.1: only messages changed after the client's MODSEQ.
			metas = slices.DeleteFunc(metas, func(m store.MessageMeta) bool { return uint64(m.ModSeq) <= options.ChangedSince })
		}
		if markSeen {
			if err := s.markSeen(ctx, metas); err != nil {
				return err
			}
		}
		for i := range metas {
			// A message another session expunged meanwhile is left out: the client gets what
			// still exists and OK, and the EXPUNGE with the next command that may carry it
			// (RFC 2180 §4.1). The mailbox itself is there: never NO [NONEXISTENT].
			if err := s.fetchOne(ctx, w, &metas[i], options, markSeen); err != nil && !errors.Is(err, errExpunged) {
				return err
			}
		}
	}
	return nil
}

// errExpunged: the message went away between reading its metadata and its body.
var errExpunged = errors.New("message expunged during FETCH")

// fetchError is storeError for reading one message, where "not found" means another session
// expunged it, not that the mailbox is gone.
func (s *session) fetchError(op string, err error) error {
	if errorsIsNotFound(err) {
		return errExpunged
	}
	return s.storeError(op, err)
}

// metas reads the metadata of the selected mailbox's messages among uids (ascending); messages
// expunged meanwhile are left out.
func (s *session) metas(ctx context.Context, op string, uids []uint32, describe bool) ([]store.MessageMeta, error) {
	var metas []store.MessageMeta
	if err := s.srv.st.FetchMeta(ctx, s.selected.ID, uids, describe, func(m *store.MessageMeta) error {
		metas = append(metas, *m)
		return nil
	}); err != nil {
		return nil, s.storeError(op, err)
	}
	return metas, nil
}

// markSeen sets \Seen on messages read with BODY[] (RFC 9051 §6.4.5) and updates metas.
func (s *session) markSeen(ctx context.Context, metas []store.MessageMeta) error {
	var unseen []uint32
	for _, m := range metas {
		if !slices.Contains(m.Flags, `\Seen`) {
			unseen = append(unseen, m.UID)
		}
	}
	if len(unseen) == 0 {
		return nil
	}
	res, modseq, err := s.srv.st.StoreFlags(ctx, s.selected.ID, unseen, store.FlagsAdd, []string{`\Seen`})
	if err != nil {
		return s.storeError("fetch set seen", err)
	}
	s.view.dropOwnFlagEvents(modseq)
	byUID := map[uint32]store.FlagResult{}
	for _, r := range res {
		byUID[r.UID] = r
	}
	for i := range metas {
		if r, ok := byUID[metas[i].UID]; ok {
			metas[i].Flags, metas[i].ModSeq = r.Flags, r.ModSeq
		}
	}
	return nil
}

func (s *session) fetchOne(ctx context.Context, w *imapserver.FetchWriter, m *store.MessageMeta, options *imap.FetchOptions, withFlags bool) error {
	seq := s.view.seqOf(m.UID)
	if seq == 0 {
		return nil
	}
	// Load what the items need before starting the response, so a store error cannot leave a
	// half-written FETCH line; BODY[] and BODY[TEXT] are the exception: they stream from the
	// store (fetchstream.go), which a message of any size needs.
	var full, header []byte
	var err error
	loadFull := func() ([]byte, error) {
		if full == nil {
			full, err = s.srv.st.MessageData(ctx, m.ID)
		}
		return full, err
	}
	var env *imap.Envelope
	if options.Envelope {
		if env, err = decodeEnvelope(m.Envelope); err != nil {
			if header, err = s.srv.st.MessageHeader(ctx, m.ID); err != nil {
				return s.fetchError("fetch header", err)
			}
			h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(header)))
			env = extractEnvelope(h)
		}
	}
	var bs imap.BodyStructure
	if options.BodyStructure != nil {
		if bs, err = decodeStructure(m.Structure); err != nil {
			msg, err := loadFull()
			if err != nil {
				return s.fetchError("fetch body", err)
			}
			bs = imapserver.ExtractBodyStructure(bytes.NewReader(msg))
		}
	}
	sections := make([][]byte, len(options.BodySection))
	streams := make([]*streamed, len(options.BodySection))
	var stored *store.MessageReader
	openStored := func() (*store.MessageReader, error) {
		if stored == nil {
			stored, err = s.srv.st.OpenMessage(ctx, m.ID)
		}
		return stored, err
	}
	for i, sec := range options.BodySection {
		if streamable(sec) && full == nil {
			if _, err := openStored(); err != nil {
				return s.fetchError("fetch body", err)
			}
			st, err := streamSection(stored, sec)
			if err == errNULInLiteral {
				return err
			}
			if err != nil {
				return s.fetchError("fetch body", err)
			}
			streams[i] = &st
			continue
		}
		if sec.Specifier == imap.PartSpecifierHeader && len(sec.Part) == 0 {
			if header == nil {
				if header, err = s.srv.st.MessageHeader(ctx, m.ID); err != nil {
					return s.fetchError("fetch header", err)
				}
			}
			sections[i] = bodySection(header, sec)
		} else if full != nil {
			sections[i] = bodySection(full, sec)
		} else {
			// A part (BODY[2], BODY[1.MIME], BODY[1.HEADER.FIELDS (…)]) is found by go-imap's MIME
			// walker reading the stored chunks in order: it stops at the part's end, so what is
			// held is the section being answered, never the whole message.
			r, err := openStored()
			if err != nil {
				return s.fetchError("fetch body", err)
			}
			if sections[i], err = partSection(r, sec); err != nil {
				return s.fetchError("fetch body", err)
			}
		}
		if bytes.IndexByte(sections[i], 0) >= 0 {
			// An IMAP literal cannot hold NUL (RFC 9051 §4.3); only BINARY[] may send it, in a
			// literal8 (RFC 3516 §4.2).
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
				Text: "This section contains NUL bytes; fetch it with BINARY[]"}
		}
	}
	var prev string
	if options.Preview {
		r, err := openStored()
		if err != nil {
			return s.fetchError("fetch preview", err)
		}
		sr := stream(r)
		if prev = preview(sr); sr.err != nil {
			return s.fetchError("fetch preview", sr.err)
		}
	}
	binaries := make([][]byte, len(options.BinarySection))
	for i, sec := range options.BinarySection {
		r, err := openStored()
		if err != nil {
			return s.fetchError("fetch body", err)
		}
		if binaries[i], err = binarySection(r, sec); err != nil {
			return s.fetchError("fetch body", err)
		}
	}
	binarySizes := make([]uint32, len(options.BinarySectionSize))
	for i, sec := range options.BinarySectionSize {
		r, err := openStored()
		if err != nil {
			return s.fetchError("fetch body", err)
		}
		if binarySizes[i], err = binarySectionSize(r, sec); err != nil {
			return s.fetchError("fetch body", err)
		}
	}

	if (options.Flags || withFlags) && s.view.learnKeywords(m.Flags) {
		if err := w.WriteMailboxFlags(s.view.mailboxFlags()); err != nil {
			return err
		}
	}
	rw := w.CreateMessage(seq)
	if options.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if options.Flags || withFlags {
		rw.WriteFlags(s.view.flagsOf(m.UID, m.Flags))
	}
	if options.ModSeq || ((options.Flags || withFlags) && s.condStore()) {
		rw.WriteModSeq(uint64(m.ModSeq)) // RFC 7162 §3.1.4
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if env != nil {
		rw.WriteEnvelope(env)
	}
	if bs != nil {
		rw.WriteBodyStructure(bs)
	}
	if options.Preview {
		rw.WritePreview(prev)
	}
	for i, sec := range options.BodySection {
		if st := streams[i]; st != nil {
			if err := st.write(rw.WriteBodySection(sec, st.len)); err != nil {
				return err
			}
			continue
		}
		if err := writeLiteral(rw.WriteBodySection(sec, int64(len(sections[i]))), sections[i]); err != nil {
			return err
		}
	}
	for i, sec := range options.BinarySection {
		if err := writeLiteral(rw.WriteBinarySection(sec, int64(len(binaries[i]))), binaries[i]); err != nil {
			return err
		}
	}
	for i, sec := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(sec, binarySizes[i])
	}
	return rw.Close()
}

func writeLiteral(wc interface {
	Write([]byte) (int, error)
	Close() error
}, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// bodySection returns a BODY[section]<partial>. Whole-message, HEADER and TEXT sections are cut
// from the stored bytes as they are, so sizes always match RFC822.SIZE; others go through
// go-imap's MIME walker.
func bodySection(msg []byte, sec *imap.FetchItemBodySection) []byte {
	var b []byte
	if len(sec.Part) == 0 && len(sec.HeaderFields) == 0 && len(sec.HeaderFieldsNot) == 0 {
		end, _ := message.HeaderLen(msg)
		switch sec.Specifier {
		case imap.PartSpecifierNone:
			b = msg
		case imap.PartSpecifierHeader:
			b = msg[:end]
		case imap.PartSpecifierText:
			b = msg[end:]
		}
		if b != nil {
			return partial(b, sec.Partial)
		}
	}
	return imapserver.ExtractBodySection(bytes.NewReader(msg), sec)
}

func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset >= int64(len(b)) {
		return []byte{}
	}
	end := int64(len(b))
	if p.Size >= 0 && p.Offset+p.Size < end {
		end = p.Offset + p.Size
	}
	return b[p.Offset:end]
}

// Store changes flags (RFC 9051 §6.4.6). Flags keep canonical case; keywords are created on
// first use (PERMANENTFLAGS has \*).
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	v := s.view
	if v.readOnly {
		return errReadOnly
	}
	uids, err := v.resolve(numSet)
	if err != nil {
		return err
	}
	op := store.FlagsReplace
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, modified, modseq, err := s.srv.st.StoreFlagsUnchangedSince(ctx, s.selected.ID, uids, op,
		fromFlags(withoutRecent(flags.Flags)), int64(options.UnchangedSince))
	if err != nil {
		return s.storeError("store", err)
	}
	v.dropOwnFlagEvents(modseq)
	// A keyword used for the first time joins FLAGS and PERMANENTFLAGS first, even for .SILENT:
	// the client must not meet a flag the mailbox never listed (RFC 9051 §7.3.5).
	if op != store.FlagsRemove && v.learnKeywords(fromFlags(flags.Flags)) {
		if err := w.WriteMailboxFlags(v.mailboxFlags()); err != nil {
			return err
		}
	}
	condStore := s.condStore()
	_, byUID := numSet.(imap.UIDSet)
	for _, r := range res {
		seq := v.seqOf(r.UID)
		changed := modseq > 0 && r.ModSeq == modseq
		// .SILENT still reports a new MODSEQ to a CONDSTORE client, which must learn it to keep
		// its cache right (RFC 7162 §3.1.3).
		if seq == 0 || (flags.Silent && !(condStore && changed)) {
			continue
		}
		rw := w.CreateMessage(seq)
		if byUID {
			rw.WriteUID(imap.UID(r.UID))
		}
		if !flags.Silent {
			rw.WriteFlags(v.flagsOf(r.UID, r.Flags))
		}
		if condStore {
			rw.WriteModSeq(uint64(r.ModSeq))
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	if len(modified) > 0 {
		// RFC 7162 §3.1.3: OK [MODIFIED set] names what was changed by someone else since.
		var set imap.NumSet = uidSet(modified)
		if !byUID {
			var seqs imap.SeqSet
			for _, uid := range modified {
				if seq := v.seqOf(uid); seq > 0 {
					seqs.AddNum(seq)
				}
			}
			set = seqs
		}
		return &imap.Error{Type: imap.StatusResponseTypeOK, Code: imap.ResponseCode("MODIFIED " + set.String()),
			Text: "Conditional STORE failed for some messages"}
	}
	return nil
}

// isCloseWriter tells CLOSE (which imapserver runs with a writer that has no connection: CLOSE
// expunges silently) from EXPUNGE.
func isCloseWriter(w *imapserver.ExpungeWriter) bool {
	f := reflect.ValueOf(w).Elem().FieldByName("conn")
	return f.IsValid() && f.IsNil()
}

// Expunge removes \Deleted messages (RFC 9051 §6.4.3, UID EXPUNGE RFC 4315) and reports them.
func (s *session) Expunge(w *imapserver.ExpungeWriter, uidSet *imap.UIDSet) error {
	v := s.view
	if v.readOnly {
		if isCloseWriter(w) {
			return nil // CLOSE of an EXAMINEd mailbox expunges nothing
		}
		return errReadOnly
	}
	var uids []uint32
	if uidSet != nil {
		var err error
		if uids, err = v.resolve(*uidSet); err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.srv.st.Expunge(ctx, s.selected.ID, uids); err != nil {
		return s.storeError("expunge", err)
	}
	return s.checkStep(v.drain(sink{expunge: w.WriteExpunge, vanished: s.vanishedWriter(w.WriteVanished)}))
}

func (s *session) destination(ctx context.Context, name string) (store.Mailbox, error) {
	mb, err := s.srv.st.MailboxByName(ctx, s.account.ID, name)
	if err != nil {
		if errorsIsNotFound(err) {
			return mb, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
		}
		return mb, s.storeError("lookup", err)
	}
	return mb, nil
}

// Copy copies messages (RFC 9051 §6.4.7) and returns COPYUID data (RFC 4315).
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	uids, err := s.view.resolve(numSet)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	dst, err := s.destination(ctx, dest)
	if err != nil {
		return nil, err
	}
	res, err := s.srv.st.CopyMessages(ctx, s.selected.ID, dst.ID, uids)
	if err != nil {
		return nil, s.storeError("copy", err)
	}
	if len(res.Source) == 0 {
		return nil, nil
	}
	return &imap.CopyData{UIDValidity: res.UIDValidity, SourceUIDs: uidSet(res.Source), DestUIDs: uidSet(res.Dest)}, nil
}

// Move moves messages atomically (RFC 6851): COPYUID first, then the EXPUNGEs.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	v := s.view
	if v.readOnly {
		return errReadOnly
	}
	uids, err := v.resolve(numSet)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	dst, err := s.destination(ctx, dest)
	if err != nil {
		return err
	}
	res, err := s.srv.st.MoveMessages(ctx, s.selected.ID, dst.ID, uids)
	if err != nil {
		return s.storeError("move", err)
	}
	if len(res.Source) > 0 {
		if err := w.WriteCopyData(&imap.CopyData{UIDValidity: res.UIDValidity, SourceUIDs: uidSet(res.Source), DestUIDs: uidSet(res.Dest)}); err != nil {
			return err
		}
	}
	return s.checkStep(v.drain(sink{expunge: w.WriteExpunge, vanished: s.vanishedWriter(w.WriteVanished)}))
}

// uidSet compresses sorted UIDs into ranges.
func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		set.AddRange(imap.UID(uids[i]), imap.UID(uids[j]))
		i = j + 1
	}
	return set
}
