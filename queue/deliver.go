package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mailstead/delivery"
	"mailstead/maillog"
)

type status int

const (
	pending   status = iota // not tried on any host yet
	delivered               // the far side said 250 after DATA
	failed                  // permanent failure: bounce
	deferred                // temporary failure: try the next host, then again later
)

// outcome is what happened to one recipient in this round.
type outcome struct {
	status status
	code   string // RFC 3463 enhanced status code
	reason string // human-readable; an SMTP reply when smtp is set
	smtp   bool
	host   string // the host that gave the outcome
	// bounceIfLast marks a temporary failure caused by something a host lacks (SIZE, 8BITMIME,
	// SMTPUTF8, REQUIRETLS): another MX may do better, but if none does, retrying will not help.
	bounceIfLast bool
	// dsnPassedOn: the host that took the message offers DSN and got our parameters, so success
	// reports are its to send (RFC 3461 §5.2.1); else we report "relayed" when asked (§6.2.1).
	dsnPassedOn bool
}

func (o outcome) open() bool { return o.status == pending || o.status == deferred }

// target is one host to try, with what the connection must satisfy.
type target struct {
	host        string
	port        int
	implicitTLS bool // TLS from the first byte (smarthost on 465)
	requireTLS  bool // verified TLS or nothing (MTA-STS enforce, smarthost)
	why         string
	user, pass  string // smarthost credentials
}

// deliverGroup makes one delivery round for a group and records each recipient's outcome.
func (q *Queue) deliverGroup(ctx context.Context, g *group, set settings) {
	out := make([]outcome, len(g.entries))
	b, err := q.openBody(ctx, g.blobID)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: the entries stay due and run again after the restart
		}
		for i := range out {
			out[i] = outcome{status: deferred, code: "4.3.0", reason: "reading the queued message: " + err.Error()}
		}
	} else {
		q.attempt(ctx, g, b, set, out)
	}
	// The outcome is recorded even when shutdown has begun: a 250 already received must be
	// written down, or a restart would send the message again.
	q.record(context.WithoutCancel(ctx), g, b, set, out)
}

func setOpen(out []outcome, o outcome) {
	for i := range out {
		if out[i].open() {
			out[i] = o
		}
	}
}

func anyOpen(out []outcome) bool {
	for _, o := range out {
		if o.open() {
			return true
		}
	}
	return false
}

// attempt tries each target in turn until every recipient has a final answer (RFC 5321 §5.1:
// the next MX on connection failure or a temporary reply).
func (q *Queue) attempt(ctx context.Context, g *group, b *body, set settings, out []outcome) {
	if q.cfg.DevMode {
		setOpen(out, outcome{status: deferred, code: "4.3.2", reason: "dev mode: no mail leaves this machine"})
		return
	}
	targets, fail := q.route(ctx, g, set)
	if fail != nil {
		setOpen(out, *fail)
		return
	}
	for _, t := range targets {
		if !anyOpen(out) || ctx.Err() != nil {
			break
		}
		q.tryTarget(ctx, t, g, b, set, out)
	}
	if ctx.Err() != nil {
		setOpen(out, outcome{status: deferred, code: "4.3.2", reason: "shutting down"})
	}
}

func firstErr(err error, r reply) any {
	if err != nil {
		return err
	}
	return r
}

// toTemp turns a status code into its temporary (4.x.x) form.
func toTemp(code string) string {
	if strings.HasPrefix(code, "5.") {
		return "4" + code[1:]
	}
	return code
}

// toPerm turns a status code into its permanent (5.x.x) form.
func toPerm(code string) string {
	if strings.HasPrefix(code, "4.") {
		return "5" + code[1:]
	}
	if code == "" {
		return "5.0.0"
	}
	return code
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// record writes each recipient's outcome: delivered entries go first, so that nothing that was
// delivered is ever sent again; then bounces; then deferrals with the next attempt.
func (q *Queue) record(ctx context.Context, g *group, b *body, set settings, out []outcome) {
	now := q.cfg.Now()
	var done []int64
	var bounced, delayed []int
	for i, e := range g.entries {
		o := &out[i]
		switch o.status {
		case delivered:
			done = append(done, e.ID)
			q.cfg.MailLog.Delivered(q.log, maillog.Event{MailFrom: e.MailFrom, Rcpts: []string{e.Rcpt}, Remote: o.host, Detail: o.reason, Queued: e.Created},
				"id", e.ID, "from", e.MailFrom, "rcpt", e.Rcpt, "host", o.host, "reply", o.reason, "attempt", e.Attempts+1)
			continue
		case failed:
			bounced = append(bounced, i)
			continue
		case pending:
			*o = outcome{status: deferred, code: "4.4.4", reason: "no host could be tried"}
		}
		if o.bounceIfLast {
			o.status, o.code = failed, toPerm(o.code)
			bounced = append(bounced, i)
			continue
		}
		if age := now.Sub(e.Created); age >= set.maxAge {
			o.status = failed
			o.reason = fmt.Sprintf("gave up after %d attempts over %s; last error: %s", e.Attempts+1, age.Round(time.Minute), o.reason)
			o.code, o.smtp = "5.4.7", false
			bounced = append(bounced, i)
			continue
		}
		delayed = append(delayed, i)
	}
	// RFC 3461 §6.2.1: a success report was asked for and the next hop cannot send it.
	var relayed []int
	for i, e := range g.entries {
		if out[i].status == delivered && !out[i].dsnPassedOn && e.DSN.Notify != "" && e.DSN.Wants("SUCCESS") {
			relayed = append(relayed, i)
		}
	}
	// The report's header is read first: QueueDone may free the body.
	if len(relayed) > 0 && b != nil {
		if err := b.keepHeader(ctx); err != nil {
			q.log.Error("queue: reading the header for a relayed report", "from", g.from, "err", err)
		}
	}
	if err := q.st.QueueDone(ctx, done...); err != nil {
		q.log.Error("queue: recording deliveries", "ids", done, "err", err)
	}
	if len(relayed) > 0 {
		if err := q.notify(ctx, g, b, relayed, out, "relayed", set.maxAge); err != nil {
			q.log.Error("queue: sending relayed report", "from", g.from, "err", err)
		}
	}

	if len(bounced) > 0 {
		if err := q.notify(ctx, g, b, bounced, out, "failed", set.maxAge); err != nil {
			// Without its bounce the entry must stay: it will bounce again next round.
			q.log.Error("queue: sending bounce", "from", g.from, "err", err)
			for _, i := range bounced {
				out[i].status = deferred
				delayed = append(delayed, i)
			}
		} else {
			var gone []int64
			for _, i := range bounced {
				e := g.entries[i]
				gone = append(gone, e.ID)
				q.cfg.MailLog.Bounced(q.log, maillog.Event{MailFrom: e.MailFrom, Rcpts: []string{e.Rcpt}, Remote: out[i].host, Detail: out[i].reason},
					"id", e.ID, "from", e.MailFrom, "rcpt", e.Rcpt, "host", out[i].host, "status", out[i].code, "reason", out[i].reason, "attempt", e.Attempts+1)
			}
			if err := q.st.QueueDone(ctx, gone...); err != nil {
				q.log.Error("queue: removing bounced entries", "ids", gone, "err", err)
			}
		}
	}

	var notice []int
	for _, i := range delayed {
		e := g.entries[i]
		o := out[i]
		next := now.Add(backoff(e.Attempts+1, set.retryInitial, set.retryMax))
		if expiry := e.Created.Add(set.maxAge); next.After(expiry) {
			next = expiry // the last attempt happens when the message expires, not later
		}
		if err := q.st.QueueDefer(ctx, []int64{e.ID}, o.reason, o.host, next); err != nil {
			q.log.Error("queue: recording deferral", "id", e.ID, "err", err)
		}
		q.cfg.MailLog.Deferred(q.log, maillog.Event{MailFrom: e.MailFrom, Rcpts: []string{e.Rcpt}, Remote: o.host, Detail: o.reason},
			"id", e.ID, "from", e.MailFrom, "rcpt", e.Rcpt, "host", o.host, "status", o.code, "reason", o.reason, "attempt", e.Attempts+1, "next", next.Format(time.RFC3339))
		if !e.DelayNotified && e.MailFrom != "" && now.Sub(e.Created) >= set.delayNotice {
			notice = append(notice, i)
		}
	}
	if len(notice) > 0 {
		if err := q.notify(ctx, g, b, notice, out, "delayed", set.maxAge); err != nil {
			q.log.Error("queue: sending delay notice", "from", g.from, "err", err)
			return
		}
		var marked []int64
		for _, i := range notice {
			marked = append(marked, g.entries[i].ID)
		}
		if err := q.st.QueueMarkDelayNotified(ctx, marked...); err != nil {
			q.log.Error("queue: recording delay notice", "err", err)
		}
	}
}

var errNullSender = errors.New("null sender")

// dsnKind is the NOTIFY keyword that asks for a report with each Action (RFC 3461 §4.1, RFC 3464
// §2.3.3).
var dsnKind = map[string]string{"failed": "FAILURE", "delayed": "DELAY", "relayed": "SUCCESS", "delivered": "SUCCESS"}

// notify sends the sender a DSN about recipients idx of g. A message from the null sender is
// itself a notification: it is never answered (RFC 5321 §4.5.5), only logged.
func (q *Queue) notify(ctx context.Context, g *group, b *body, idx []int, out []outcome, action string, maxAge time.Duration) error {
	if g.from == "" {
		return nil
	}
	rcpts := make([]dsnRecipient, 0, len(idx))
	for _, i := range idx {
		e := g.entries[i]
		// NOTIFY decides per recipient which reports go out (RFC 3461 §4.1); NEVER, none.
		if e.DSN.Wants(dsnKind[action]) {
			rcpts = append(rcpts, dsnRecipient{entry: e, outcome: out[i]})
		}
	}
	if len(rcpts) == 0 {
		return nil
	}
	// Only a RET=FULL failure report carries the message; the others need its header alone.
	var orig original
	if b != nil {
		var err error
		full := action == "failed" && rcpts[0].entry.DSN.Ret == "FULL"
		if orig, err = b.forReport(ctx, full); err != nil {
			return err
		}
	}
	msg := q.composeDSN(g.from, orig, rcpts, action, maxAge)
	return q.sendDSN(ctx, g.from, msg)
}

// sendDSN delivers a notification to sender through the one delivery function: straight into
// the mailbox when the sender is local, else queued from the null sender, DKIM-signed.
func (q *Queue) sendDSN(ctx context.Context, sender string, msg []byte) error {
	if sender == "" {
		return errNullSender
	}
	rc, err := q.deliver.Resolve(ctx, sender)
	if err != nil {
		return fmt.Errorf("dsn to %s: %w", sender, err)
	}
	var top []byte
	if rc.Remote {
		rc.SMTPUTF8, rc.EightBit = !isASCII(sender), has8bit(msg)
		if q.cfg.Sign != nil {
			if top, err = q.cfg.Sign(ctx, msg); err != nil {
				q.log.Warn("queue: signing a bounce", "err", err)
				top = nil
			}
		}
	}
	env := &delivery.Envelope{ID: "dsn-" + randomHex(8), MailFrom: "", Rcpts: []delivery.Recipient{rc}}
	if _, err := q.deliver.Deliver(ctx, env, delivery.Message{Top: top, Body: bytes.NewReader(msg)}); err != nil {
		return err
	}
	return nil // a remote DSN wakes the queue through the store's QueueDue event
}
