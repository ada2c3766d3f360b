package imapserver

import "github.com/emersion/go-imap/v2"

// QRESYNC (RFC 7162 §3.2): SELECT (QRESYNC ...) resynchronisation, VANISHED responses, UID FETCH
// (CHANGEDSINCE n VANISHED). (mailstead)

// SessionQResync is a session that supports QRESYNC.
type SessionQResync interface {
	Session
	// Resync runs after a SELECT with a QRESYNC parameter has sent its usual responses: it
	// writes VANISHED (EARLIER) for what was expunged and FETCH for what changed since.
	Resync(w *FetchWriter, q *imap.SelectQResync) error
}

func (c *Conn) resync(options *imap.SelectOptions) error {
	if options.QResync == nil {
		return nil
	}
	sess, ok := c.session.(SessionQResync)
	if !ok {
		return nil
	}
	return sess.Resync(&FetchWriter{conn: c}, options.QResync)
}

func (c *Conn) writeVanished(uids imap.UIDSet, earlier bool) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("VANISHED").SP()
	if earlier {
		enc.Special('(').Atom("EARLIER").Special(')').SP()
	}
	return enc.NumSet(uids).CRLF()
}

// WriteVanished writes VANISHED (EARLIER) uids, for SELECT (QRESYNC) and UID FETCH (VANISHED).
func (w *FetchWriter) WriteVanished(uids imap.UIDSet) error { return w.conn.writeVanished(uids, true) }

// WriteVanished writes VANISHED uids, which replaces EXPUNGE once QRESYNC is enabled
// (RFC 7162 §3.2.10).
func (w *UpdateWriter) WriteVanished(uids imap.UIDSet) error {
	if !w.allowExpunge {
		return errVanishedNotAllowed
	}
	return w.conn.writeVanished(uids, false)
}

// WriteVanished is VANISHED for EXPUNGE and UID EXPUNGE (nothing is written during CLOSE).
func (w *ExpungeWriter) WriteVanished(uids imap.UIDSet) error {
	if w.conn == nil {
		return nil
	}
	return w.conn.writeVanished(uids, false)
}

// WriteVanished is VANISHED for MOVE.
func (w *MoveWriter) WriteVanished(uids imap.UIDSet) error { return w.conn.writeVanished(uids, false) }

var errVanishedNotAllowed = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug,
	Text: "imapserver: VANISHED updates are not allowed in this context"}
