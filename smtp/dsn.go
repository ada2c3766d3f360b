package smtp

import (
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/store"
)

// The DSN extension (RFC 3461) is offered on every listener. go-smtp parses and checks the
// parameters (NOTIFY=NEVER alone, §4.1; xtext in ORCPT and ENVID, §4); the session keeps them
// with each recipient, the store with each queued one, and the queue passes them on or honours
// them in its reports.

// recipientDSN is one recipient's DSN parameters with its transaction's RET and ENVID.
func recipientDSN(mail gosmtp.MailOptions, rcpt *gosmtp.RcptOptions) store.DSN {
	d := store.DSN{Ret: string(mail.Return), EnvID: mail.EnvelopeID}
	if rcpt == nil {
		return d
	}
	var notify []string
	for _, n := range rcpt.Notify {
		notify = append(notify, strings.ToUpper(string(n)))
	}
	d.Notify = strings.Join(notify, ",")
	if rcpt.OriginalRecipient != "" {
		d.ORcpt = strings.ToLower(string(rcpt.OriginalRecipientType)) + ";" + rcpt.OriginalRecipient
	}
	return d
}

// NotifyRecipient is a recipient delivered here that asked for a success report.
type NotifyRecipient struct {
	Addr string
	DSN  store.DSN
}

// notifySuccess lists the local recipients that asked for NOTIFY=SUCCESS (RFC 3461 §5.2.2:
// delivery into a mailbox is the final success the report is about). Remote recipients get
// theirs from the queue.
func notifySuccess(rcpts []recipient) []NotifyRecipient {
	var out []NotifyRecipient
	for _, rc := range rcpts {
		if !rc.remote && rc.dsn.Notify != "" && rc.dsn.Wants("SUCCESS") {
			out = append(out, NotifyRecipient{Addr: rc.addr, DSN: rc.dsn})
		}
	}
	return out
}
