package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"mailstead/message"
	"mailstead/store"
)

// searchChunk is how many messages' metadata SEARCH reads at once.
const searchChunk = 4096

func errorsIsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// Search evaluates SEARCH criteria (RFC 9051 §6.4.4) over the messages the client knows.
// Flags, dates, sizes and numbers come from the metadata; header criteria read only the header;
// BODY and TEXT read and decode the message.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	v := s.view
	needHeader, needBody := searchNeeds(criteria)
	ctx, cancel := s.ctx()
	defer cancel()
	var matched []uint32
	var maxModSeq int64 // reported when the criteria use MODSEQ (RFC 7162 §3.1.5)
	uids := v.known
	for len(uids) > 0 {
		chunk := uids[:min(searchChunk, len(uids))]
		uids = uids[len(chunk):]
		metas, err := s.metas(ctx, "search", chunk, false)
		if err != nil {
			return nil, err
		}
		for i := range metas {
			c := &candidate{s: s, ctx: ctx, meta: &metas[i], seq: v.seqOf(metas[i].UID)}
			if needHeader {
				if err := c.loadHeader(); err != nil {
					return nil, err
				}
			}
			if needBody {
				if err := c.loadBody(); err != nil {
					return nil, err
				}
			}
			if c.match(criteria) {
				matched = append(matched, metas[i].UID)
				maxModSeq = max(maxModSeq, metas[i].ModSeq)
			}
		}
	}
	data := &imap.SearchData{Count: uint32(len(matched)), ModSeq: uint64(maxModSeq)}
	if kind == imapserver.NumKindUID {
		data.All = uidSet(matched)
		if len(matched) > 0 {
			data.Min, data.Max = matched[0], matched[len(matched)-1]
		}
	} else {
		var seqs imap.SeqSet
		for _, uid := range matched {
			seq := v.seqOf(uid)
			seqs.AddNum(seq)
			if data.Min == 0 || seq < data.Min {
				data.Min = seq
			}
			data.Max = max(data.Max, seq)
		}
		data.All = seqs
	}
	if options.ReturnSave {
		v.searchRes = matched
	}
	return data, nil
}

func searchNeeds(c *imap.SearchCriteria) (header, body bool) {
	header = len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero()
	body = len(c.Body) > 0 || len(c.Text) > 0
	for i := range c.Not {
		h, b := searchNeeds(&c.Not[i])
		header, body = header || h, body || b
	}
	for i := range c.Or {
		for j := range c.Or[i] {
			h, b := searchNeeds(&c.Or[i][j])
			header, body = header || h, body || b
		}
	}
	return header, body
}

type candidate struct {
	s      *session
	ctx    context.Context
	meta   *store.MessageMeta
	seq    uint32
	header mail.Header
	body   []byte
}

func (c *candidate) loadHeader() error {
	raw, err := c.s.srv.st.MessageHeader(c.ctx, c.meta.ID)
	if err != nil {
		if errorsIsNotFound(err) {
			raw = nil // expunged meanwhile: matches nothing that needs a header
		} else {
			return c.s.storeError("search header", err)
		}
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	c.header = mail.Header{Header: gomessage.Header{Header: h}}
	return nil
}

func (c *candidate) loadBody() error {
	b, err := c.s.srv.st.MessageData(c.ctx, c.meta.ID)
	if err != nil && !errorsIsNotFound(err) {
		return c.s.storeError("search body", err)
	}
	c.body = b
	return nil
}

func (c *candidate) match(cr *imap.SearchCriteria) bool {
	v := c.s.view
	for _, set := range cr.SeqNum {
		if imap.IsSearchRes(set) {
			if !slices.Contains(v.searchRes, c.meta.UID) {
				return false
			}
			continue
		}
		if c.seq == 0 || !numSetContains(set, c.seq, uint32(len(v.known))) {
			return false
		}
	}
	for _, set := range cr.UID {
		if imap.IsSearchRes(set) {
			if _, ok := slices.BinarySearch(v.searchRes, c.meta.UID); !ok {
				return false
			}
			continue
		}
		var maxUID uint32
		if len(v.known) > 0 {
			maxUID = v.known[len(v.known)-1]
		}
		if !numSetContains(set, c.meta.UID, maxUID) {
			return false
		}
	}
	// WITHIN (RFC 5032): to the second, unlike SINCE and BEFORE, which compare dates.
	if (!cr.Younger.IsZero() && c.meta.InternalDate.Before(cr.Younger)) || (!cr.Older.IsZero() && !c.meta.InternalDate.Before(cr.Older)) {
		return false
	}
	if !matchDate(c.meta.InternalDate, cr.Since, cr.Before) {
		return false
	}
	// MODSEQ: per-flag MODSEQs are not kept, so the message's own stands for each (RFC 7162 §3.1.5).
	if cr.ModSeq != nil && uint64(c.meta.ModSeq) < cr.ModSeq.ModSeq {
		return false
	}
	for _, f := range cr.Flag {
		if !c.hasFlag(string(f)) {
			return false
		}
	}
	for _, f := range cr.NotFlag {
		if c.hasFlag(string(f)) {
			return false
		}
	}
	if cr.Larger != 0 && c.meta.Size <= cr.Larger {
		return false
	}
	if cr.Smaller != 0 && c.meta.Size >= cr.Smaller {
		return false
	}
	for _, hf := range cr.Header {
		if !matchHeaderFields(c.header.FieldsByKey(hf.Key), hf.Value) && !matchAddresses(c.header.Values(hf.Key), hf.Key, hf.Value) {
			return false
		}
	}
	if !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		t, err := c.header.Date()
		if err != nil || t.IsZero() || !matchDate(t, cr.SentSince, cr.SentBefore) {
			return false
		}
	}
	for _, text := range cr.Text {
		if !matchText(c.body, text, true) {
			return false
		}
	}
	for _, text := range cr.Body {
		if !matchText(c.body, text, false) {
			return false
		}
	}
	for i := range cr.Not {
		if c.match(&cr.Not[i]) {
			return false
		}
	}
	for i := range cr.Or {
		if !c.match(&cr.Or[i][0]) && !c.match(&cr.Or[i][1]) {
			return false
		}
	}
	return true
}

// numSetContains is Contains with "*" standing for max.
func numSetContains(set imap.NumSet, n, maxN uint32) bool {
	in := func(lo, hi uint32) bool {
		if lo == 0 {
			lo = maxN
		}
		if hi == 0 {
			hi = maxN
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		return lo <= n && n <= hi
	}
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			if in(r.Start, r.Stop) {
				return true
			}
		}
	case imap.UIDSet:
		for _, r := range set {
			if in(uint32(r.Start), uint32(r.Stop)) {
				return true
			}
		}
	}
	return false
}

// hasFlag matches stored flags, and \Recent as this session holds it (SEARCH RECENT, NEW, OLD).
func (c *candidate) hasFlag(f string) bool {
	if strings.EqualFold(f, flagRecent) {
		return c.s.view.isRecent(c.meta.UID)
	}
	return hasFlag(c.meta.Flags, f)
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// matchDate compares dates only, ignoring time and zone (RFC 9051 §6.4.4).
func matchDate(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && d.Before(time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	if !before.IsZero() && !d.Before(time.Date(before.Year(), before.Month(), before.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	return true
}

func matchHeaderFields(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	pattern = strings.ToLower(pattern)
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if strings.Contains(strings.ToLower(v), pattern) {
			return true
		}
	}
	return false
}

// addressFields are the fields SEARCH FROM, TO, CC and BCC (and HEADER) also match by their
// parsed mailboxes, so "<user (comment)@ (comment) domain.org>" is found as user@domain.org.
var addressFields = map[string]bool{"from": true, "sender": true, "reply-to": true, "to": true, "cc": true, "bcc": true}

func matchAddresses(values []string, key, pattern string) bool {
	if !addressFields[strings.ToLower(key)] || pattern == "" {
		return false
	}
	pattern = strings.ToLower(pattern)
	for _, v := range values {
		groups, _ := message.ParseGroupedAddressList(v)
		for _, g := range groups {
			for _, m := range g.Mailboxes {
				if strings.Contains(strings.ToLower(m.Name+" <"+m.Addr()+">"), pattern) {
					return true
				}
			}
		}
	}
	return false
}

// matchText searches decoded text parts (and with headers, every header field) for pattern,
// case-insensitively.
func matchText(msg []byte, pattern string, withHeader bool) bool {
	if msg == nil {
		return false
	}
	if pattern == "" {
		return true
	}
	e, err := gomessage.Read(bytes.NewReader(msg))
	if e == nil {
		return bytes.Contains(bytes.ToLower(msg), bytes.ToLower([]byte(pattern)))
	}
	_ = err // unknown charsets still give a readable entity
	return matchEntity(e, strings.ToLower(pattern), withHeader, 0)
}

func matchEntity(e *gomessage.Entity, pattern string, withHeader bool, depth int) bool {
	if depth > 20 {
		return false
	}
	if withHeader && matchHeaderFields(e.Header.Fields(), pattern) {
		return true
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			part, err := mr.NextPart()
			if err != nil {
				return false
			}
			if matchEntity(part, pattern, withHeader, depth+1) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(e.Body, 64<<20))
	return bytes.Contains(bytes.ToLower(b), []byte(pattern))
}
