package imapwire

import "github.com/emersion/go-imap/v2"

// InvalidMailboxName answers a mailbox name that is a valid astring but not valid modified
// UTF-7 (RFC 3501 §5.1.3): the command is well-formed and names no mailbox that can exist, so
// the reply is NO, not BAD (RFC 9051 §7.1.2, §7.1.3). (mailstead)
func InvalidMailboxName(err error) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
		Text: "Mailbox name is not valid modified UTF-7: " + err.Error()}
}

// PeekSPList reports whether the next bytes are " (", consuming nothing: an item with an
// optional parenthesised modifier, such as FETCH PREVIEW (LAZY) (RFC 8970), can then tell it
// from the next item of a list. (mailstead)
func (dec *Decoder) PeekSPList() bool {
	if dec.literal || dec.refused {
		return false
	}
	b, err := dec.r.Peek(2)
	return err == nil && b[0] == ' ' && b[1] == '('
}
