package queue

import (
	"context"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/store"
)

// NOTIFY=SUCCESS to a next hop that offers DSN: the parameters go on with the message and the
// report is the next hop's to send, not ours. To one without DSN: we send "relayed" (RFC 3461
// §6.2.1), carrying ENVID and ORCPT back.
func TestDSNSuccessPassedOnOrRelayed(t *testing.T) {
	for _, tt := range []struct {
		name        string
		farDSN      bool
		wantReports int
	}{
		{"next hop offers DSN", true, 0},
		{"next hop without DSN", false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "127.0.0.32")
			e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.32")
			far := startFarSideOpts(t, "127.0.0.32", 25+e.offset, farOpts{dsn: tt.farDSN})
			e.start()
			e.submitDSN(testMsg, "bob@b.test", store.DSN{Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;Bob@B.test", Ret: "HDRS", EnvID: "env 42"})
			e.waitFor("delivery recorded", func() bool { return len(far.messages()) == 1 && e.idle() })
			m := far.messages()[0]
			if tt.farDSN {
				if m.mailOpts.Return != gosmtp.DSNReturnHeaders || m.mailOpts.EnvelopeID != "env 42" {
					t.Errorf("MAIL parameters at the next hop: RET=%q ENVID=%q", m.mailOpts.Return, m.mailOpts.EnvelopeID)
				}
				if len(m.rcptOpts) != 1 || len(m.rcptOpts[0].Notify) != 2 || m.rcptOpts[0].OriginalRecipient != "Bob@B.test" {
					t.Errorf("RCPT parameters at the next hop: %+v", m.rcptOpts)
				}
			}
			box := e.inbox()
			if len(box) != tt.wantReports {
				t.Fatalf("%d reports to alice, want %d", len(box), tt.wantReports)
			}
			if tt.wantReports == 0 {
				return
			}
			r := string(box[0])
			for _, want := range []string{"Subject: Relayed: hello", "Action: relayed", "Status: 2.0.0",
				"Original-Envelope-Id: env+2042", "Original-Recipient: rfc822; Bob@B.test",
				"Final-Recipient: rfc822; bob@b.test", "Remote-MTA: dns; mx.b.test", "Content-Type: text/rfc822-headers"} {
				if !strings.Contains(r, want) {
					t.Errorf("report lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("report:\n%s", r)
			}
		})
	}
}

// On a permanent failure NOTIFY decides whether a bounce goes out, and RET what it carries: the
// header only (HDRS, and by default) or the whole message (FULL).
func TestDSNFailureNotifyAndRet(t *testing.T) {
	for _, tt := range []struct {
		name     string
		dsn      store.DSN
		bounce   bool
		wantBody bool
	}{
		{"NOTIFY=NEVER", store.DSN{Notify: "NEVER"}, false, false},
		{"NOTIFY=SUCCESS only", store.DSN{Notify: "SUCCESS"}, false, false},
		{"default", store.DSN{}, true, false},
		{"RET=HDRS", store.DSN{Notify: "FAILURE", Ret: "HDRS"}, true, false},
		{"RET=FULL", store.DSN{Notify: "FAILURE", Ret: "FULL"}, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "127.0.0.33")
			e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.33")
			far := startFarSideOpts(t, "127.0.0.33", 25+e.offset, farOpts{})
			far.rcptErr = func(string) error {
				return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			e.start()
			e.submitDSN(testMsg, "bob@b.test", tt.dsn)
			e.waitFor("the failure recorded", func() bool { return strings.Contains(e.logs.String(), "msg=bounced") && e.idle() })
			box := e.inbox()
			if !tt.bounce {
				if len(box) != 0 {
					t.Fatalf("a bounce went out:\n%s", box[0])
				}
				return
			}
			if len(box) != 1 {
				t.Fatalf("%d bounces, want 1", len(box))
			}
			r := string(box[0])
			if !strings.Contains(r, "Action: failed") || !strings.Contains(r, "Subject: hello") {
				t.Errorf("not a bounce with the original header:\n%s", r)
			}
			if got := strings.Contains(r, "Hi Bob."); got != tt.wantBody {
				t.Errorf("bounce carries the body: %v, want %v:\n%s", got, tt.wantBody, r)
			}
			if tt.wantBody && !strings.Contains(r, "Content-Type: message/rfc822") {
				t.Errorf("RET=FULL bounce is not message/rfc822:\n%s", r)
			}
		})
	}
}

func TestXtext(t *testing.T) {
	for in, want := range map[string]string{"plain": "plain", "a b": "a+20b", "x+y=z": "x+2By+3Dz", "é": "+C3+A9"} {
		if got := xtext(in); got != want {
			t.Errorf("xtext(%q) = %q, want %q", in, got, want)
		}
	}
}

// Delay notices go out by default and when NOTIFY has DELAY, never when NOTIFY leaves it out
// (RFC 3461 §4.1, §5.2.1); the expiry bounce follows NOTIFY's FAILURE.
func TestDSNDelayOnlyWhenAsked(t *testing.T) {
	for _, tt := range []struct {
		notify string
		want   []string // the Actions of alice's notices, in order
	}{
		{"DELAY,FAILURE", []string{"delayed", "failed"}},
		{"FAILURE", []string{"failed"}},
		{"DELAY", []string{"delayed"}},
	} {
		t.Run(tt.notify, func(t *testing.T) {
			e := newEnv(t, "127.0.0.34") // nothing listens there: every attempt is deferred
			e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.34")
			ctx := context.Background()
			e.st.SetSetting(ctx, "queue.delay_notice", "1s")
			e.st.SetSetting(ctx, "queue.max_age", "4s")
			e.start()
			e.submitDSN(testMsg, "bob@b.test", store.DSN{Notify: tt.notify})
			e.waitFor("the entry to expire", func() bool { return strings.Contains(e.logs.String(), "msg=bounced") && e.idle() })
			var got []string
			for _, m := range e.inbox() {
				for _, a := range []string{"delayed", "failed"} {
					if strings.Contains(string(m), "Action: "+a+"\r\n") {
						got = append(got, a)
					}
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("notices %v, want %v", got, tt.want)
			}
		})
	}
}
