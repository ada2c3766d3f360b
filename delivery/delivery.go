// Package delivery is the one way a message enters the store: it builds the trace header
// (Received:), each local copy's Return-Path and Delivered-To, expands recipients to accounts,
// and commits local copies and queue entries in one store write. The MX receiver, submission,
// LMTP, DSNs and anything else that accepts mail call Deliver; none of them builds a
// store.Delivery itself. It never speaks a protocol and never decides policy (that is the
// caller's, before Deliver).
package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mailstead/message"
	"mailstead/store"
)

// Store is what delivery needs of the store.
type Store interface {
	LookupRecipient(ctx context.Context, local, domain string) ([]int64, error)
	Deliver(ctx context.Context, d *store.Delivery) ([]store.DeliveredCopy, error)
}

// Envelope is one message's transaction: who sent it, to whom, and how it arrived. Protocol
// extensions that must travel with the message into the store (DSN's RET and ENVID, for
// example) add fields here and to Recipient.
type Envelope struct {
	ID       string // the transaction id, in the Received: line and the log lines
	MailFrom string // the reverse-path, "" for the null sender
	Rcpts    []Recipient
	// Trace, if set, is the Received: line to put on top (RFC 5321 §4.4). DSNs and imports,
	// made here rather than received, have none.
	Trace *Trace
	// Received is the internal date of the copies; zero means now.
	Received time.Time
}

// Recipient is one forward-path.
type Recipient struct {
	Address string // canonical local@domain
	// Remote recipients are queued for relay; others get local copies.
	Remote bool
	// Accounts are the local accounts the address delivers to (aliases expanded). Nil for a
	// local recipient means Deliver looks them up.
	Accounts []int64
	// Mailbox is the RFC 6154 special use of the mailbox the local copies go to (`\Junk`), ""
	// for INBOX.
	Mailbox string
	// Copies, when set for an account, files that account's copy on its own (the junk filter's
	// per-account verdict); Mailbox applies to the others.
	Copies map[int64]Copy
	// RequireTLS, SMTPUTF8 and EightBit carry the transaction's extensions to the queue for
	// remote recipients (RFC 8689, RFC 6531, RFC 6152).
	RequireTLS, SMTPUTF8, EightBit bool
	// DSN is the recipient's RFC 3461 parameters with the message's RET and ENVID, queued with
	// a remote recipient so the queue can pass them on or honour them.
	DSN store.DSN
}

// Copy is how one account's copy is filed.
type Copy struct {
	Mailbox string // RFC 6154 special use, "" for INBOX
	Header  string // header lines this copy alone carries (under Delivered-To), CRLF-terminated
}

// Message is the content to store: Top, then the Received: line, then Body.
type Message struct {
	// Top holds header fields to put above the trace line, CRLF-terminated
	// (Authentication-Results on port 25, DKIM-Signature on submission).
	Top []byte
	// Body is the message itself, CRLF-normalised, read through ReadAt (a spool file, or parts
	// of one, need not be loaded).
	Body message.Source
}

// Deliverer delivers messages into one store.
type Deliverer struct {
	st       Store
	hostname func() string
}

// New returns a Deliverer for st; hostname names this server in Received: lines.
func New(st Store, hostname func() string) *Deliverer {
	return &Deliverer{st: st, hostname: hostname}
}

// Resolve returns the recipient for addr: local with its accounts when addr is served here
// (store.ErrUnknownUser when the domain is ours but the user is not), remote otherwise.
func (d *Deliverer) Resolve(ctx context.Context, addr string) (Recipient, error) {
	local, domain, err := store.SplitAddress(addr)
	if err != nil {
		return Recipient{}, fmt.Errorf("recipient %q: %w", addr, err)
	}
	addr = local + "@" + domain
	ids, err := d.st.LookupRecipient(ctx, local, domain)
	switch {
	case errors.Is(err, store.ErrNotOurDomain):
		return Recipient{Address: addr, Remote: true}, nil
	case err != nil:
		return Recipient{}, fmt.Errorf("recipient %s: %w", addr, err)
	}
	return Recipient{Address: addr, Accounts: ids}, nil
}

// Deliver commits msg for every recipient of env, durably: on nil error each local copy is in
// its mailbox and each remote recipient is queued (one transaction); on error nothing is. It
// returns where the local copies went.
func (d *Deliverer) Deliver(ctx context.Context, env *Envelope, msg Message) ([]store.DeliveredCopy, error) {
	var trace string
	if env.Trace != nil {
		t := *env.Trace
		if t.By == "" && d.hostname != nil {
			t.By = d.hostname()
		}
		if t.ID == "" {
			t.ID = env.ID
		}
		if t.For == "" && len(env.Rcpts) == 1 {
			t.For = env.Rcpts[0].Address
		}
		trace = t.String()
	}
	top := make([]byte, 0, len(msg.Top)+len(trace))
	top = append(append(top, msg.Top...), trace...)
	body := message.NewConcat(message.Bytes(top), msg.Body)
	sd := &store.Delivery{MailFrom: env.MailFrom, Body: body, Size: body.Size(), Received: env.Received}
	for _, rc := range env.Rcpts {
		if rc.Remote {
			sd.Remote = append(sd.Remote, store.RemoteRecipient{
				Address: rc.Address, RequireTLS: rc.RequireTLS, SMTPUTF8: rc.SMTPUTF8, EightBit: rc.EightBit,
				DSN: rc.DSN,
			})
			continue
		}
		accounts := rc.Accounts
		if accounts == nil {
			r, err := d.Resolve(ctx, rc.Address)
			if err != nil {
				return nil, err
			}
			if r.Remote {
				return nil, fmt.Errorf("recipient %s: %w", rc.Address, store.ErrNotOurDomain)
			}
			accounts = r.Accounts
		}
		for _, id := range accounts {
			c, ok := rc.Copies[id]
			if !ok {
				c = Copy{Mailbox: rc.Mailbox}
			}
			sd.Local = append(sd.Local, store.LocalRecipient{
				AccountID: id, SpecialUse: c.Mailbox,
				Prefix: append(copyPrefix(env.MailFrom, rc.Address), c.Header...),
			})
		}
	}
	copies, err := d.st.Deliver(ctx, sd)
	if err != nil {
		return nil, fmt.Errorf("deliver %s: %w", env.ID, err)
	}
	return copies, nil
}

// copyPrefix is what only one local copy carries: Return-Path, added by the final delivery
// (RFC 5321 §4.4), and Delivered-To, the address it was delivered for, which lets a mail client
// tell aliases apart and a loop be seen.
func copyPrefix(mailFrom, rcpt string) []byte {
	return []byte("Return-Path: <" + mailFrom + ">\r\nDelivered-To: " + rcpt + "\r\n")
}

// Trace is the Received: line of RFC 5321 §4.4, folded as RFC 5322 §2.2.3 allows.
type Trace struct {
	Helo, IP string // the client's EHLO name and address
	By       string // our host name; "" means the Deliverer's
	With     string // the protocol (RFC 3848: ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS, ...)
	TLS      string // "using TLS1.3 with cipher ...", "" without TLS
	ID       string // "" means the envelope's
	For      string // the one recipient, "" for several (their addresses are private)
	At       time.Time
}

func (h Trace) String() string {
	s := fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s (mailstead) with %s id %s", h.Helo, h.IP, h.By, h.With, h.ID)
	if h.TLS != "" {
		s += "\r\n\t(" + h.TLS + ")"
	}
	if h.For != "" {
		s += "\r\n\tfor <" + h.For + ">"
	}
	at := h.At
	if at.IsZero() {
		at = time.Now()
	}
	return s + ";\r\n\t" + at.Format(time.RFC1123Z) + "\r\n"
}
