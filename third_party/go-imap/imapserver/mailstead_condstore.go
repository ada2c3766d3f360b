package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// CONDSTORE (RFC 7162 §3.1): MODSEQ in FETCH, FETCH (CHANGEDSINCE), STORE (UNCHANGEDSINCE),
// SEARCH MODSEQ, STATUS HIGHESTMODSEQ, SELECT (CONDSTORE) and the HIGHESTMODSEQ response code.
// The parsing and writing live here; the hooks in fetch.go, store.go, search.go, status.go,
// select.go and enable.go are one marked line each. (mailstead)

// enableCondStore records that the client used a CONDSTORE-enabling command (RFC 7162 §3.1):
// from then on every FETCH response with FLAGS carries MODSEQ.
func (c *Conn) enableCondStore() {
	if !c.server.options.caps().Has(imap.CapCondStore) {
		return
	}
	c.mutex.Lock()
	c.enabled[imap.CapCondStore] = struct{}{}
	c.mutex.Unlock()
}

// readSelectParams reads SELECT's optional " (CONDSTORE)" (RFC 7162 §3.1.8) or
// " (QRESYNC (uidvalidity modseq [known-uids [seq-match-data]]))" (RFC 7162 §3.2.5).
func (c *Conn) readSelectParams(dec *imapwire.Decoder, options *imap.SelectOptions) error {
	if !dec.SP() {
		return nil
	}
	return dec.ExpectList(func() error {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		switch {
		case strings.EqualFold(name, "CONDSTORE") && c.server.options.caps().Has(imap.CapCondStore):
			options.CondStore = true
			return nil
		case strings.EqualFold(name, "QRESYNC") && c.enabled.Has(imap.CapQResync):
			q := &imap.SelectQResync{}
			if !dec.ExpectSP() {
				return dec.Err()
			}
			err := dec.ExpectList(func() error {
				if !dec.ExpectNumber(&q.UIDValidity) || !dec.ExpectSP() || !dec.ExpectModSeq(&q.ModSeq) {
					return dec.Err()
				}
				if dec.SP() {
					if dec.Special('(') {
						return readSeqMatchData(dec)
					}
					if !dec.ExpectUIDSet(&q.KnownUIDs) {
						return dec.Err()
					}
					if dec.SP() {
						if !dec.ExpectSpecial('(') {
							return dec.Err()
						}
						return readSeqMatchData(dec)
					}
				}
				return nil
			})
			options.QResync = q
			return err
		case strings.EqualFold(name, "QRESYNC"):
			return newClientBugError("QRESYNC must be enabled first (RFC 7162 §3.2.3)")
		}
		return newClientBugError("Unknown SELECT parameter")
	})
}

// readSeqMatchData skips "known-sequence-set SP known-uid-set)": a hint to save bandwidth that
// a server may ignore (RFC 7162 §3.2.5.2); the "(" is read.
func readSeqMatchData(dec *imapwire.Decoder) error {
	var seqs imap.NumSet
	var uids imap.UIDSet
	if !dec.ExpectNumSet(imapwire.NumKindSeq, &seqs) || !dec.ExpectSP() || !dec.ExpectUIDSet(&uids) || !dec.ExpectSpecial(')') {
		return dec.Err()
	}
	return nil
}

// writeHighestModSeq writes SELECT's OK [HIGHESTMODSEQ n] (RFC 7162 §3.1.2.1).
func (c *Conn) writeHighestModSeq(modSeq uint64) error {
	if !c.server.options.caps().Has(imap.CapCondStore) {
		return nil
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("OK").SP().Special('[').Atom("HIGHESTMODSEQ").SP().ModSeq(modSeq).Special(']')
	return enc.SP().Text("Highest").CRLF()
}

// readFetchModifiers reads FETCH's optional "(CHANGEDSINCE n)" (RFC 7162 §3.1.4.1).
func (c *Conn) readFetchModifiers(dec *imapwire.Decoder, options *imap.FetchOptions) error {
	if dec.SP() {
		err := dec.ExpectList(func() error {
			var name string
			if !dec.ExpectAtom(&name) {
				return dec.Err()
			}
			if strings.EqualFold(name, "VANISHED") && c.enabled.Has(imap.CapQResync) {
				options.Vanished = true // RFC 7162 §3.2.6; only with UID FETCH and CHANGEDSINCE
				return nil
			}
			if !strings.EqualFold(name, "CHANGEDSINCE") || !c.server.options.caps().Has(imap.CapCondStore) {
				return newClientBugError("Unknown FETCH modifier")
			}
			if !dec.ExpectSP() || !dec.ExpectModSeq(&options.ChangedSince) {
				return dec.Err()
			}
			options.ModSeq = true // CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if options.ModSeq {
		c.enableCondStore()
	}
	return nil
}

// readStoreModifiers reads STORE's optional "(UNCHANGEDSINCE n) " (RFC 7162 §3.1.3).
func (c *Conn) readStoreModifiers(dec *imapwire.Decoder, options *imap.StoreOptions) error {
	isList, err := dec.List(func() error {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		if !strings.EqualFold(name, "UNCHANGEDSINCE") || !c.server.options.caps().Has(imap.CapCondStore) {
			return newClientBugError("Unknown STORE modifier")
		}
		if !dec.ExpectSP() || !dec.ExpectModSeq(&options.UnchangedSince) {
			return dec.Err()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if isList {
		c.enableCondStore()
		if !dec.ExpectSP() {
			return dec.Err()
		}
	}
	return nil
}

// readSearchModSeq reads the MODSEQ search key: [entry-name entry-type-req SP] mod-sequence-valzer
// (RFC 7162 §3.1.5).
func readSearchModSeq(dec *imapwire.Decoder, criteria *imap.SearchCriteria) error {
	ms := &imap.SearchCriteriaModSeq{}
	if !dec.ExpectSP() {
		return dec.Err()
	}
	if dec.String(&ms.MetadataName) {
		var typ string
		if !dec.ExpectSP() || !dec.ExpectAtom(&typ) || !dec.ExpectSP() {
			return dec.Err()
		}
		switch t := imap.SearchCriteriaMetadataType(strings.ToLower(typ)); t {
		case imap.SearchCriteriaMetadataPrivate, imap.SearchCriteriaMetadataShared, imap.SearchCriteriaMetadataAll:
			ms.MetadataType = t
		default:
			return newClientBugError("Unknown MODSEQ entry type")
		}
	}
	if !dec.ExpectModSeq(&ms.ModSeq) {
		return dec.Err()
	}
	criteria.ModSeq = ms
	return nil
}

// usesModSeq reports whether SEARCH criteria hold MODSEQ, which makes SEARCH CONDSTORE-enabling
// and adds (MODSEQ n) to its result (RFC 7162 §3.1.5).
func usesModSeq(c *imap.SearchCriteria) bool {
	if c.ModSeq != nil {
		return true
	}
	for i := range c.Not {
		if usesModSeq(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if usesModSeq(&c.Or[i][0]) || usesModSeq(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// WriteModSeq writes a message's MODSEQ (RFC 7162 §3.1.4).
func (w *FetchResponseWriter) WriteModSeq(modSeq uint64) {
	w.writeItemSep()
	w.enc.Atom("MODSEQ").SP().Special('(').ModSeq(modSeq).Special(')')
}

// WriteMessageFlagsModSeq is WriteMessageFlags with MODSEQ, for a client that enabled CONDSTORE
// (RFC 7162 §3.1.4: unsolicited FETCH responses carry it too).
func (w *UpdateWriter) WriteMessageFlagsModSeq(seqNum uint32, uid imap.UID, flags []imap.Flag, modSeq uint64) error {
	fetchWriter := &FetchWriter{conn: w.conn}
	respWriter := fetchWriter.CreateMessage(seqNum)
	if uid != 0 {
		respWriter.WriteUID(uid)
	}
	respWriter.WriteFlags(flags)
	respWriter.WriteModSeq(modSeq)
	return respWriter.Close()
}
