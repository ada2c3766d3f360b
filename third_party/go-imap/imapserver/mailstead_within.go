package imapserver

import (
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// readSearchWithin reads WITHIN's "OLDER n" / "YOUNGER n" (RFC 5032 §3: n is a nz-number of
// seconds before now). Several of the same key narrow the range. (mailstead)
func readSearchWithin(dec *imapwire.Decoder, criteria *imap.SearchCriteria, older bool) error {
	var n uint32
	if !dec.ExpectSP() || !dec.ExpectNumber(&n) {
		return dec.Err()
	}
	if n == 0 {
		return newClientBugError("OLDER and YOUNGER take a number of seconds above 0 (RFC 5032)")
	}
	t := time.Now().Add(-time.Duration(n) * time.Second)
	if older {
		if criteria.Older.IsZero() || t.Before(criteria.Older) {
			criteria.Older = t
		}
	} else if t.After(criteria.Younger) {
		criteria.Younger = t
	}
	return nil
}
