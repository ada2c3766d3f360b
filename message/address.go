package message

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// addressParser is the one address parser of mailstead (net/mail's, which knows RFC 5322 §3.4
// groups and RFC 6532 UTF-8). Display names are only decoded to be skipped, so an encoded word
// in a charset Go does not know is passed through rather than failing the whole list.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
}}

// ParseAddressList parses a field value that holds an address-list or a mailbox-list (RFC 5322
// §3.4: From, Resent-From, To, Cc, Bcc, Reply-To) and returns each addr-spec in order. Members
// of a group are included; an empty group ("undisclosed-recipients:;") adds none. An empty value
// gives an empty list without error.
func ParseAddressList(value string) ([]string, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	list, err := addressParser.ParseList(value)
	if err != nil {
		return nil, fmt.Errorf("address list %q: %w", clip(value), err)
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out, nil
}

// ParseMailbox parses a field that holds exactly one mailbox (RFC 5322 §3.6.2 Sender,
// Resent-Sender) and returns its addr-spec.
func ParseMailbox(value string) (string, error) {
	a, err := addressParser.Parse(value)
	if err != nil {
		return "", fmt.Errorf("mailbox %q: %w", clip(value), err)
	}
	return a.Address, nil
}

// ErrNoAddress is returned by Header.Addresses when no field of that name exists.
var ErrNoAddress = errors.New("no such address field")

// Addresses returns the addresses of every field called name, in order. A field that does not
// parse is an error naming it: callers that enforce identity (submission's From check, DKIM
// signing, DMARC) must all see the same list or none.
func (h Header) Addresses(name string) ([]string, error) {
	var out []string
	found := false
	for _, v := range h.Values(name) {
		found = true
		list, err := ParseAddressList(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, list...)
	}
	if !found {
		return nil, fmt.Errorf("%s: %w", name, ErrNoAddress)
	}
	return out, nil
}

// DisplayedAddress returns the address a mail client would most likely show for a value that
// does not parse: the text inside the last angle brackets, or the whole value. It is only for
// policy that must still apply to malformed mail (DMARC on spam's broken From fields); identity
// checks use ParseAddressList.
func DisplayedAddress(value string) string {
	v := value
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	return strings.TrimSpace(v)
}

// Domain returns the part of addr after its last '@', or "" when there is none.
func Domain(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return addr[at+1:]
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
