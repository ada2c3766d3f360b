package imapserver

import "github.com/emersion/go-imap/v2"

// mailsteadAnyStateCaps are announced in every state: ID works before login too. (mailstead)
var mailsteadAnyStateCaps = []imap.Cap{
	imap.CapID, // RFC 2971, mailstead_id.go
}

// mailsteadCaps are the capabilities of the commands mailstead added to this copy, announced
// after authentication when the server's Caps hold them. (mailstead)
var mailsteadCaps = []imap.Cap{
	imap.CapQuota, "QUOTA=RES-STORAGE", // RFC 9208, mailstead_quota.go
	imap.CapCondStore, // RFC 7162 §3.1, mailstead_condstore.go
	imap.CapQResync,   // RFC 7162 §3.2, mailstead_qresync.go
	imap.CapWithin,    // RFC 5032, mailstead_within.go
	imap.CapPreview,   // RFC 8970, mailstead_preview.go
}
