package imap

// SelectQResync is SELECT's QRESYNC parameter (RFC 7162 §3.2.5): what the client last knew of
// the mailbox. (mailstead)
type SelectQResync struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   UIDSet // optional: the UIDs the client knows, limiting VANISHED (EARLIER)
}
