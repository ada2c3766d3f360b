package store

import "strings"

// DSN is what a submitter asked to be told about one recipient (RFC 3461): NOTIFY and ORCPT are
// the recipient's, RET and ENVID the message's. The zero value asked nothing: the defaults apply.
type DSN struct {
	Notify string // "" (not given), "NEVER", or a comma list of SUCCESS, FAILURE, DELAY (§4.1)
	ORcpt  string // "type;address" as given in ORCPT, decoded (§4.2); "" = none
	Ret    string // "", "FULL" or "HDRS" (§4.3)
	EnvID  string // ENVID, decoded (§4.4); "" = none
}

// Wants reports whether a report of kind ("SUCCESS", "FAILURE", "DELAY") is to be sent. Without
// NOTIFY, failures and delays are reported and successes are not (RFC 3461 §5.2.1 leaves delay
// notices to the MTA; this one sends them).
func (d DSN) Wants(kind string) bool {
	if d.Notify == "" {
		return kind != "SUCCESS"
	}
	for _, k := range strings.Split(d.Notify, ",") {
		if k == kind {
			return true
		}
	}
	return false
}
