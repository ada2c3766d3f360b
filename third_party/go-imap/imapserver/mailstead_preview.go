package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// PREVIEW (RFC 8970): a short plain-text preview of a message. (mailstead)

// readFetchPreview reads the optional " (LAZY)" after PREVIEW (RFC 8970 §3.1). The server
// always computes the preview, so LAZY asks for nothing different.
func readFetchPreview(dec *imapwire.Decoder) error {
	if !dec.PeekSPList() || !dec.SP() || !dec.Special('(') {
		return nil
	}
	var mod string
	if !dec.ExpectAtom(&mod) || !dec.ExpectSpecial(')') {
		return dec.Err()
	}
	if !strings.EqualFold(mod, "LAZY") {
		return newClientBugError("Unknown PREVIEW modifier")
	}
	return nil
}

// WritePreview writes PREVIEW "text" ("" for a message without text; NIL, for a preview not
// computed yet, is never needed: it is computed at once).
func (w *FetchResponseWriter) WritePreview(preview string) {
	w.writeItemSep()
	w.enc.Atom("PREVIEW").SP().String(preview)
}
