package imapserver

import "github.com/emersion/go-imap/v2"

// mailsteadCaps are the capabilities of the commands mailstead added to this copy, announced
// after authentication when the server's Caps hold them. (mailstead)
var mailsteadCaps = []imap.Cap{
	imap.CapQuota, "QUOTA=RES-STORAGE", // RFC 9208, mailstead_quota.go
}
