package imapserver

// IsLSub reports whether the writer answers LSUB rather than LIST: RFC 3501 §6.3.9 lists an
// unsubscribed parent of a subscribed name with \Noselect, where LIST (SUBSCRIBED
// RECURSIVEMATCH) uses CHILDINFO instead (RFC 5258 §3.5). (mailstead)
func (w *ListWriter) IsLSub() bool { return w.lsub }
