package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"mailstead/message"
	"mailstead/store"
)

type dsnRecipient struct {
	entry   store.QueueEntry
	outcome outcome
}

// composeDSN writes a delivery status notification (RFC 3464) to sender about rcpts: a
// multipart/report (RFC 6522) with a human-readable part, the message/delivery-status part and
// the original message's header (text/rfc822-headers) or, for RET=FULL failures, the message.
// action is "failed", "delayed", "relayed" or "delivered" (RFC 3464 §2.3.3).
func (q *Queue) composeDSN(sender string, orig original, rcpts []dsnRecipient, action string, maxAge time.Duration) []byte {
	hostname := q.cfg.Hostname()
	now := q.cfg.Now()
	boundary := "dsn-" + randomHex(12)
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	subject := dsnSubjects[action]
	hdr, _ := message.ParseHeader(orig.header)
	origSubject := hdr.Get("Subject")
	if origSubject == "" {
		origSubject = "your message"
	}
	w("From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", hostname)
	w("To: <%s>\r\n", sender)
	b.WriteString(subjectField(subject, origSubject))
	w("Date: %s\r\n", now.Format(time.RFC1123Z))
	w("Message-ID: <%s@%s>\r\n", randomHex(16), hostname)
	if id := hdr.Get("Message-ID"); id != "" {
		w("In-Reply-To: %s\r\nReferences: %s\r\n", id, id)
	}
	// RFC 3834: automatic replies must not be answered automatically.
	w("Auto-Submitted: auto-replied\r\n")
	w("MIME-Version: 1.0\r\n")
	w("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary)
	w("\r\nThis is a MIME-formatted delivery status notification.\r\n")

	// Part 1: for people.
	w("\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	switch action {
	case "delayed":
		w("Your message has not been delivered yet to the recipients below. The mail server\r\n")
		w("%s keeps trying; you will be told if it gives up. You do not need to send it again.\r\n\r\n", hostname)
	case "relayed":
		w("Your message was handed on to the recipients' mail servers below, as you asked to be\r\n")
		w("told. Those servers do not send delivery reports, so this is the last report from\r\n")
		w("%s about it.\r\n\r\n", hostname)
	case "delivered":
		w("Your message was delivered to the mailboxes of the recipients below, as you asked to\r\n")
		w("be told, by the mail server %s.\r\n\r\n", hostname)
	default:
		w("Your message could not be delivered to the recipients below. The mail server\r\n")
		w("%s gave up on them; the reason is shown for each.\r\n\r\n", hostname)
	}
	for _, r := range rcpts {
		w("  <%s>\r\n", r.entry.Rcpt)
		if r.outcome.host != "" {
			w("    host %s said: %s\r\n", r.outcome.host, oneLine(r.outcome.reason))
		} else {
			w("    %s\r\n", oneLine(r.outcome.reason))
		}
	}

	if action == "failed" && len(rcpts) > 0 && rcpts[0].entry.DSN.Ret == "FULL" && orig.full == nil && orig.size > maxFullReturn {
		w("\r\nYou asked for the message back; at %d bytes it is larger than the %d bytes a\r\n", orig.size, maxFullReturn)
		w("report carries, so only its header is attached.\r\n")
	}

	// Part 2: for programs (RFC 3464 §2.2, §2.3).
	w("\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	w("Reporting-MTA: dns; %s\r\n", hostname)
	if len(rcpts) > 0 && rcpts[0].entry.DSN.EnvID != "" {
		w("Original-Envelope-Id: %s\r\n", xtext(rcpts[0].entry.DSN.EnvID)) // RFC 3464 §2.2.1
	}
	if len(rcpts) > 0 {
		w("Arrival-Date: %s\r\n", rcpts[0].entry.Created.Format(time.RFC1123Z))
	}
	for _, r := range rcpts {
		o := r.outcome
		code := o.code
		switch action {
		case "failed":
			code = toPerm(code)
		case "delayed":
			code = toTemp(code)
		default:
			code = "2.0.0"
		}
		w("\r\n")
		if typ, addr, ok := strings.Cut(r.entry.DSN.ORcpt, ";"); ok {
			w("Original-Recipient: %s; %s\r\n", typ, asciiLine(addr)) // RFC 3464 §2.3.1
		}
		if isASCII(r.entry.Rcpt) {
			w("Final-Recipient: rfc822; %s\r\n", r.entry.Rcpt)
		} else {
			w("Final-Recipient: utf-8; %s\r\n", r.entry.Rcpt) // RFC 6533
		}
		w("Action: %s\r\n", action)
		w("Status: %s\r\n", code)
		if o.host != "" {
			w("Remote-MTA: dns; %s\r\n", o.host)
		}
		if o.smtp {
			w("Diagnostic-Code: smtp; %s\r\n", asciiLine(o.reason))
		} else if o.reason != "" {
			w("Diagnostic-Code: x-mailstead; %s\r\n", asciiLine(o.reason))
		}
		if !r.entry.LastAttempt.IsZero() || o.status != pending {
			w("Last-Attempt-Date: %s\r\n", now.Format(time.RFC1123Z))
		}
		if action == "delayed" {
			w("Will-Retry-Until: %s\r\n", r.entry.Created.Add(maxAge).Format(time.RFC1123Z))
		}
	}

	// Part 3: the original header (RFC 6522 text/rfc822-headers), or the whole message when the
	// sender asked for it with RET=FULL and the report says it failed (RFC 3461 §4.3).
	if action == "failed" && len(rcpts) > 0 && rcpts[0].entry.DSN.Ret == "FULL" && orig.full != nil {
		w("\r\n--%s\r\nContent-Type: message/rfc822\r\n\r\n", boundary)
		b.Write(orig.full)
		if !bytes.HasSuffix(orig.full, []byte("\r\n")) {
			w("\r\n")
		}
	} else {
		w("\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
		b.Write(message.HeaderBytes(orig.header))
	}
	w("\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// dsnSubjects start the Subject of each kind of report.
var dsnSubjects = map[string]string{
	"failed": "Undeliverable: ", "delayed": "Delivery delayed: ",
	"relayed": "Relayed: ", "delivered": "Delivered: ",
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
