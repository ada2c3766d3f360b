package imapserver

import "github.com/emersion/go-imap/v2"

// WriteMailboxFlags writes an untagged FLAGS response and, when perm is not nil, an
// OK [PERMANENTFLAGS] one, in the middle of a command's FETCH responses: a STORE or FETCH that
// shows a keyword the client has not seen in FLAGS announces it first (RFC 9051 §7.3.5, §7.1).
// (mailstead)
func (w *FetchWriter) WriteMailboxFlags(flags, perm []imap.Flag) error {
	if err := w.conn.writeFlags(flags); err != nil {
		return err
	}
	if perm == nil {
		return nil
	}
	return w.conn.writePermanentFlags(perm)
}

// WritePermanentFlags writes an OK [PERMANENTFLAGS] response. (mailstead)
func (w *UpdateWriter) WritePermanentFlags(perm []imap.Flag) error {
	return w.conn.writePermanentFlags(perm)
}
