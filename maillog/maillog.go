// Package maillog writes mailstead's stable mail log lines, one per message received, rejected,
// submitted, delivered, deferred or bounced, one per failed login and one per failed TLS
// handshake, and hands each event, typed, to its subscribers (the Prometheus counters, the
// admin page's recent events). Operators
// grep these lines and fail2ban reads "auth failed": their text and attributes must not change.
// It decides nothing and never touches the store; subscribers must not block.
package maillog

import (
	"log/slog"
	"time"
)

// Kind is what happened.
type Kind int

const (
	Received        Kind = iota + 1 // accepted and committed from another server (port 25, LMTP)
	Rejected                        // refused after DATA (policy, authentication, quota, identity)
	Submitted                       // accepted and committed from an own user (587, 465)
	Delivered                       // the remote server accepted one outbound recipient
	Deferred                        // one outbound attempt failed temporarily
	Bounced                         // an outbound recipient was given up on
	AuthFailed                      // a login failed
	HandshakeFailed                 // a client's TLS handshake failed (implicit TLS or STARTTLS)
)

// Event is one mail event as the subscribers see it.
type Event struct {
	Kind     Kind
	At       time.Time
	Via      string // Received, Rejected: "mx", "lmtp" or "submission"
	MailFrom string
	Rcpts    []string // the envelope recipients; for queue events the one recipient
	Remote   string   // the client's IP (SMTP, logins) or the remote host (queue)
	Detail   string   // the reply or the reason
	Proto    string   // AuthFailed: smtp, imap, pop3, admin, api; HandshakeFailed: smtp, imap, pop3, https
	User     string   // AuthFailed: the user name tried
	// Queued is when a Delivered entry entered the queue (for the delivery latency).
	Queued time.Time
}

// Subscriber receives every event after its line is written, on the caller's goroutine.
type Subscriber interface {
	MailEvent(Event)
}

// Log writes the lines and notifies subscribers. A nil *Log still writes the lines.
type Log struct {
	subs []Subscriber
}

// New returns a Log with the given subscribers.
func New(subs ...Subscriber) *Log { return &Log{subs: subs} }

func (l *Log) notify(ev Event) {
	if l == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	for _, s := range l.subs {
		s.MailEvent(ev)
	}
}

// Received writes "smtp delivered": a message from another server is committed.
func (l *Log) Received(log *slog.Logger, ev Event, attrs ...any) {
	ev.Kind = Received
	log.Info("smtp delivered", attrs...)
	l.notify(ev)
}

// Submitted writes "smtp submitted": a message from an own user is committed.
func (l *Log) Submitted(log *slog.Logger, ev Event, attrs ...any) {
	ev.Kind, ev.Via = Submitted, "submission"
	log.Info("smtp submitted", attrs...)
	l.notify(ev)
}

// Rejected writes "smtp rejected": a message refused after DATA by sender authentication or
// because the store could not take it (quota).
func (l *Log) Rejected(log *slog.Logger, ev Event, attrs ...any) {
	ev.Kind = Rejected
	log.Info("smtp rejected", attrs...)
	l.notify(ev)
}

// SubmissionRejected writes "smtp submission rejected": a submitted message whose From,
// Sender or Resent-From the user does not own.
func (l *Log) SubmissionRejected(log *slog.Logger, ev Event, attrs ...any) {
	ev.Kind, ev.Via = Rejected, "submission"
	log.Warn("smtp submission rejected", attrs...)
	l.notify(ev)
}

// Delivered writes the queue's "delivered" line for one recipient.
func (l *Log) Delivered(log *slog.Logger, ev Event, attrs ...any) {
	ev.Kind = Delivered
	log.Info("delivered", attrs...)
	l.notify(ev)
}

// Deferred writes the queue's "deferred" line for one recipient's failed attempt.
func (l *Log) Deferred(log *slog.Logger, ev Event, attrs ...any) {
	ev.Kind = Deferred
	log.Info("deferred", attrs...)
	l.notify(ev)
}

// Bounced writes the queue's "bounced" line for a recipient given up on.
func (l *Log) Bounced(log *slog.Logger, ev Event, attrs ...any) {
	ev.Kind = Bounced
	log.Info("bounced", attrs...)
	l.notify(ev)
}

// AuthFailed writes the failed-login line, the same for every protocol so one fail2ban filter
// (contrib/fail2ban) covers them all:
//
//	level=WARN msg="auth failed" proto=smtp ip=192.0.2.7 user=alice@example.com
func (l *Log) AuthFailed(log *slog.Logger, proto, ip, user string) {
	log.Warn("auth failed", "proto", proto, "ip", ip, "user", user)
	l.notify(Event{Kind: AuthFailed, Proto: proto, Remote: ip, User: user})
}

// HandshakeFailed writes the one INFO line for a client whose TLS handshake failed (scanners,
// old clients: the client's problem, not an error of ours) and counts it for the metrics:
//
//	level=INFO msg="tls handshake failed" proto=imap detail="…"
func (l *Log) HandshakeFailed(log *slog.Logger, proto string, attrs ...any) {
	log.Info("tls handshake failed", append([]any{"proto", proto}, attrs...)...)
	l.notify(Event{Kind: HandshakeFailed, Proto: proto})
}
