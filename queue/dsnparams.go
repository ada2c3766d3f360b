package queue

import (
	"context"
	"fmt"
	"strings"

	"mailstead/store"
)

// dsnMailParams are the MAIL parameters that pass a message's RET and ENVID on (RFC 3461 §4.3,
// §4.4).
func dsnMailParams(d store.DSN) []string {
	var p []string
	if d.Ret != "" {
		p = append(p, "RET="+d.Ret)
	}
	if d.EnvID != "" {
		p = append(p, "ENVID="+xtext(d.EnvID))
	}
	return p
}

// dsnRcptParams are the RCPT parameters that pass a recipient's NOTIFY and ORCPT on (RFC 3461
// §4.1, §4.2). Without ORCPT we add none: §4.2 makes it optional, and we did not rewrite the
// recipient.
func dsnRcptParams(d store.DSN) []string {
	var p []string
	if d.Notify != "" {
		p = append(p, "NOTIFY="+d.Notify)
	}
	if typ, addr, ok := strings.Cut(d.ORcpt, ";"); ok && addr != "" {
		p = append(p, "ORCPT="+typ+";"+xtext(addr))
	}
	return p
}

// xtext encodes s as RFC 3461 §4 xtext: printable ASCII other than "+" and "=" as is, every other
// byte as "+HH".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

// DeliveredRecipient is a recipient delivered into a mailbox here that asked for a success
// report.
type DeliveredRecipient struct {
	Addr string
	DSN  store.DSN
}

// NotifyDelivered sends sender the success report (RFC 3461 §6.2.2, Action: delivered) for
// recipients whose copies the store has committed; msg is the message as stored. Mail from the
// null sender gets none.
func (q *Queue) NotifyDelivered(ctx context.Context, sender string, msg []byte, rcpts []DeliveredRecipient) error {
	if sender == "" || len(rcpts) == 0 {
		return nil
	}
	now := q.cfg.Now()
	var rs []dsnRecipient
	for _, r := range rcpts {
		rs = append(rs, dsnRecipient{
			entry:   store.QueueEntry{Rcpt: r.Addr, Created: now, DSN: r.DSN},
			outcome: outcome{status: delivered, code: "2.0.0", reason: "delivered to the recipient's mailbox"},
		})
	}
	return q.sendDSN(ctx, sender, q.composeDSN(sender, original{header: msg, size: int64(len(msg))}, rs, "delivered", 0))
}
