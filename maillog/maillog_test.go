package maillog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type recorder []Event

func (r *recorder) MailEvent(ev Event) { *r = append(*r, ev) }

// TestLinesAndEvents: each event writes today's stable line, byte for byte (operators' greps and
// contrib/fail2ban depend on them), and reaches the subscriber typed.
func TestLinesAndEvents(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	var got recorder
	l := New(&got)
	queued := time.Now().Add(-time.Minute)
	for _, tc := range []struct {
		write func()
		line  string
		kind  Kind
	}{
		{func() { l.AuthFailed(log, "smtp", "192.0.2.7", "alice@example.com") },
			`level=WARN msg="auth failed" proto=smtp ip=192.0.2.7 user=alice@example.com`, AuthFailed},
		{func() { l.Received(log, Event{Via: "mx"}, "id", "x1", "junk", false) }, `level=INFO msg="smtp delivered" id=x1 junk=false`, Received},
		{func() { l.Submitted(log, Event{}, "id", "x2") }, `level=INFO msg="smtp submitted" id=x2`, Submitted},
		{func() { l.Rejected(log, Event{Via: "mx"}, "reply", "550 5.7.1 no") }, `level=INFO msg="smtp rejected" reply="550 5.7.1 no"`, Rejected},
		{func() { l.SubmissionRejected(log, Event{}, "reason", "why") }, `level=WARN msg="smtp submission rejected" reason=why`, Rejected},
		{func() { l.Delivered(log, Event{Queued: queued}, "id", 7) }, `level=INFO msg=delivered id=7`, Delivered},
		{func() { l.Deferred(log, Event{}, "id", 8) }, `level=INFO msg=deferred id=8`, Deferred},
		{func() {
			l.HandshakeFailed(log, "imap", "detail", "tls: first record does not look like a TLS handshake")
		},
			`level=INFO msg="tls handshake failed" proto=imap detail="tls: first record does not look like a TLS handshake"`, HandshakeFailed},
		{func() { l.Bounced(log, Event{}, "id", 9) }, `level=INFO msg=bounced id=9`, Bounced},
	} {
		buf.Reset()
		n := len(got)
		tc.write()
		if line := strings.TrimSpace(buf.String()); line != tc.line {
			t.Errorf("line %q, want %q", line, tc.line)
		}
		if len(got) != n+1 || got[n].Kind != tc.kind || got[n].At.IsZero() {
			t.Errorf("%q: subscriber got %+v", tc.line, got[n:])
		}
	}
	if ev := got[0]; ev.Proto != "smtp" || ev.Remote != "192.0.2.7" || ev.User != "alice@example.com" {
		t.Errorf("auth event %+v", ev)
	}
	if ev := got[4]; ev.Via != "submission" {
		t.Errorf("submission rejection via %q", ev.Via)
	}
	var nilLog *Log
	buf.Reset()
	nilLog.AuthFailed(log, "imap", "192.0.2.8", "bob")
	if !strings.Contains(buf.String(), `msg="auth failed" proto=imap`) {
		t.Errorf("a nil Log must still write the line: %q", buf.String())
	}
}
