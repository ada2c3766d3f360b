package imap

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 header words in envelopes
	"github.com/emersion/go-message/textproto"

	"mailstead/message"
)

// Describe parses a message into its IMAP ENVELOPE and BODYSTRUCTURE, encoded as JSON for the
// store (store.Options.Describe), so FETCH never reparses a body. It never fails: a message it
// cannot parse gets nil, and FETCH then parses on demand.
func Describe(msg []byte) (envelope, structure []byte) {
	return DescribeAt(bytes.NewReader(msg), int64(len(msg)))
}

// DescribeAt is Describe for a message read through ReadAt (a spooled or stored one): it reads
// the header, then streams the whole message once for the structure, holding no more than a
// buffer of it (third_party/go-imap counts leaf parts instead of loading them).
func DescribeAt(msg io.ReaderAt, size int64) (envelope, structure []byte) {
	defer func() {
		if recover() != nil {
			envelope, structure = nil, nil
		}
	}()
	h, err := textproto.ReadHeader(bufio.NewReader(io.NewSectionReader(msg, 0, size)))
	if err != nil {
		return nil, nil
	}
	envelope, _ = json.Marshal(extractEnvelope(h))
	structure, _ = json.Marshal(encodeStructure(imapserver.ExtractBodyStructure(io.NewSectionReader(msg, 0, size))))
	return envelope, structure
}

// extractEnvelope is go-imap's envelope with the address fields parsed by mailstead's message
// package, which keeps what RFC 3501 §7.4.2 reports: groups as (NIL NIL "name" NIL) … (NIL NIL
// NIL NIL), including "undisclosed-recipients:;", and mailboxes written with a source route or
// comments between their parts (RFC 5322 §4.4), which go-imap's parser drops.
func extractEnvelope(h textproto.Header) *imap.Envelope {
	env := imapserver.ExtractEnvelope(h)
	env.From = envelopeAddresses(h, "From")
	env.Sender = envelopeAddresses(h, "Sender")
	env.ReplyTo = envelopeAddresses(h, "Reply-To")
	env.To = envelopeAddresses(h, "To")
	env.Cc = envelopeAddresses(h, "Cc")
	env.Bcc = envelopeAddresses(h, "Bcc")
	return env
}

// envelopeAddresses returns the ENVELOPE address list of every field called key. The source
// route is not reported (go-imap writes the adl as NIL; RFC 5321 §C says to ignore routes).
func envelopeAddresses(h textproto.Header, key string) []imap.Address {
	var out []imap.Address
	for _, v := range h.Values(key) {
		groups, _ := message.ParseGroupedAddressList(v) // what parses is kept
		for _, g := range groups {
			group := g.IsGroup && g.Name != "" // a nameless group would read as an end marker
			if group {
				out = append(out, imap.Address{Mailbox: g.Name})
			}
			for _, m := range g.Mailboxes {
				out = append(out, imap.Address{Name: m.Name, Mailbox: m.Local, Host: m.Domain})
			}
			if group {
				out = append(out, imap.Address{})
			}
		}
	}
	return out
}

// bodyJSON is a BODYSTRUCTURE node: a multipart when Multi is set, else a single part.
type bodyJSON struct {
	Multi    bool        `json:"m,omitempty"`
	Children []*bodyJSON `json:"c,omitempty"`
	MultiExt *imap.BodyStructureMultiPartExt

	Type, Subtype string            `json:",omitempty"`
	Params        map[string]string `json:",omitempty"`
	ID            string            `json:",omitempty"`
	Description   string            `json:",omitempty"`
	Encoding      string            `json:",omitempty"`
	Size          uint32            `json:",omitempty"`
	Text          *imap.BodyStructureText
	Ext           *imap.BodyStructureSinglePartExt
	RFC822        *rfc822JSON `json:",omitempty"`
}

type rfc822JSON struct {
	Envelope *imap.Envelope
	Body     *bodyJSON
	NumLines int64
}

func encodeStructure(bs imap.BodyStructure) *bodyJSON {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		j := &bodyJSON{Multi: true, Subtype: bs.Subtype, MultiExt: bs.Extended}
		for _, c := range bs.Children {
			j.Children = append(j.Children, encodeStructure(c))
		}
		return j
	case *imap.BodyStructureSinglePart:
		j := &bodyJSON{Type: bs.Type, Subtype: bs.Subtype, Params: bs.Params, ID: bs.ID, Description: bs.Description,
			Encoding: bs.Encoding, Size: bs.Size, Text: bs.Text, Ext: bs.Extended}
		if m := bs.MessageRFC822; m != nil {
			j.RFC822 = &rfc822JSON{Envelope: m.Envelope, Body: encodeStructure(m.BodyStructure), NumLines: m.NumLines}
		}
		return j
	}
	return nil
}

func (j *bodyJSON) decode() imap.BodyStructure {
	if j.Multi {
		bs := &imap.BodyStructureMultiPart{Subtype: j.Subtype, Extended: j.MultiExt}
		for _, c := range j.Children {
			if c != nil {
				bs.Children = append(bs.Children, c.decode())
			}
		}
		return bs
	}
	bs := &imap.BodyStructureSinglePart{Type: j.Type, Subtype: j.Subtype, Params: j.Params, ID: j.ID,
		Description: j.Description, Encoding: j.Encoding, Size: j.Size, Text: j.Text, Extended: j.Ext}
	if j.RFC822 != nil {
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{Envelope: j.RFC822.Envelope, NumLines: j.RFC822.NumLines}
		if j.RFC822.Body != nil {
			bs.MessageRFC822.BodyStructure = j.RFC822.Body.decode()
		}
	}
	return bs
}

func decodeEnvelope(b []byte) (*imap.Envelope, error) {
	if len(b) == 0 {
		return nil, errors.New("no stored envelope")
	}
	var env imap.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	return &env, nil
}

func decodeStructure(b []byte) (imap.BodyStructure, error) {
	if len(b) == 0 {
		return nil, errors.New("no stored body structure")
	}
	var j bodyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	return j.decode(), nil
}
