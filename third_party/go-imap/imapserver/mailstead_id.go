package imapserver

import (
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// ID (RFC 2971): the client tells who it is, the server answers with its own fields, in any
// state. (mailstead)

// SessionID is a session that answers ID. The client's fields are for logs only: RFC 2971 §3.1
// forbids changing behaviour because of them.
type SessionID interface {
	Session
	ID(client map[string]string) map[string]string
}

// RFC 2971 §3.3: at most 30 pairs, field names up to 30 octets, values up to 1024.
const (
	maxIDPairs    = 30
	maxIDKeyLen   = 30
	maxIDValueLen = 1024
)

func (c *Conn) handleID(dec *imapwire.Decoder) error {
	sess, ok := c.session.(SessionID)
	if !ok || !c.server.options.caps().Has(imap.CapID) {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command"}
	}
	if !dec.ExpectSP() {
		return dec.Err()
	}
	client := map[string]string{}
	var key *string
	isList, err := dec.List(func() error {
		var s string
		if !dec.ExpectNString(&s) {
			return dec.Err()
		}
		if key == nil {
			if len(s) > maxIDKeyLen {
				return newClientBugError("ID field name longer than 30 octets")
			}
			key = &s
			return nil
		}
		if len(s) > maxIDValueLen {
			return newClientBugError("ID field value longer than 1024 octets")
		}
		if len(client) >= maxIDPairs {
			return newClientBugError("more than 30 ID fields")
		}
		client[*key] = s
		key = nil
		return nil
	})
	if err != nil {
		return err
	}
	if !isList && !dec.ExpectNIL() {
		return dec.Err()
	}
	if key != nil {
		return newClientBugError("ID field without a value")
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	server := sess.ID(client)
	keys := make([]string, 0, len(server))
	for k := range server {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ID").SP()
	if len(keys) == 0 {
		enc.NIL()
	} else {
		enc.List(len(keys), func(i int) {
			enc.Quoted(keys[i]).SP().String(server[keys[i]])
		})
	}
	return enc.CRLF()
}
