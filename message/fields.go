package message

import (
	"fmt"
	"mime"
	"net/mail"
	"time"

	"github.com/emersion/go-message/charset"
)

// textDecoder decodes RFC 2047 encoded words in unstructured fields (Subject), in the charsets
// go-message knows.
var textDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// Text returns the value of the first field called name with RFC 2047 encoded words decoded
// (for unstructured fields such as Subject, RFC 5322 §3.6.5); a word that does not decode is
// kept as written.
func (h Header) Text(name string) string {
	v := h.Get(name)
	if dec, err := textDecoder.DecodeHeader(v); err == nil {
		return dec
	}
	return v
}

// Date parses the Date field (RFC 5322 §3.3, and the obsolete two-digit years of §4.3 that old
// mail uses). net/mail reads an obsolete zone name such as EST as +0000.
func (h Header) Date() (time.Time, error) {
	v := h.Get("Date")
	if v == "" {
		return time.Time{}, fmt.Errorf("no Date field")
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: %w", clip(v), err)
	}
	return t, nil
}
