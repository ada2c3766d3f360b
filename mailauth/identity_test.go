package mailauth_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"mailstead/mailauth"
)

// TestOwnDomainClaims: mail from the internet that shows one of our addresses (a.test) in From,
// Sender or Resent-From, in any form a reader might see, is refused unless a.test authenticated
// it; every case of issue 18 is a row.
func TestOwnDomainClaims(t *testing.T) {
	e := newEnv(t)
	enc := "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte("admin@a.test")) + "?="
	tests := []struct {
		name, header string
		signA        bool // DKIM-signed by a.test
		verdict      mailauth.Verdict
		reason       string
	}{
		{"single From", "From: admin@a.test", false, mailauth.Reject, "own domain a.test"},
		{"two From fields", "From: admin@a.test\r\nFrom: x@other.test", false, mailauth.Reject, "own domain a.test"},
		{"From list mixing ours", "From: x@other.test, admin@a.test", false, mailauth.Reject, "own domain a.test"},
		{"group From", "From: staff: admin@a.test;", false, mailauth.Reject, "own domain a.test"},
		{"encoded-word display name", "From: " + enc + " <x@other.test>", false, mailauth.Reject, "own domain a.test"},
		{"encoded-word as the whole From", "From: " + enc, false, mailauth.Reject, "own domain a.test"},
		{"empty From with Sender", "From:\r\nSender: admin@a.test", false, mailauth.Reject, "own domain a.test"},
		{"only Sender", "From: x@other.test\r\nSender: admin@a.test", false, mailauth.Reject, "own domain a.test"},
		{"Resent-From", "From: x@other.test\r\nResent-From: admin@a.test", false, mailauth.Reject, "own domain a.test"},
		{"quoted local part", `From: "admin@a.test"@other.test`, false, mailauth.Reject, "own domain a.test"},
		{"no closing bracket", "From: admin@a.test <x@other.test", false, mailauth.Reject, "own domain a.test"},
		{"display name", `From: "admin@a.test" <x@other.test>`, false, mailauth.Reject, "own domain a.test"},
		{"comment", "From: x@other.test (admin@a.test)", false, mailauth.Reject, "own domain a.test"},
		{"upper case", "From: ADMIN@A.TEST", false, mailauth.Reject, "own domain a.test"},
		{"empty From", "From:", false, mailauth.Reject, "no single valid From address"},
		{"unparseable From of no one", "From: <<x@other.test", false, mailauth.Reject, "no single valid From address"},
		{"someone else, plainly", `From: "X" <x@other.test>`, false, mailauth.Accept, ""},
		{"Sender ours, signed by us", "From: x@other.test\r\nSender: admin@a.test", true, mailauth.Accept, ""},
		{"display name ours, signed by us", `From: "admin@a.test" <x@other.test>`, true, mailauth.Accept, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := []byte(tt.header + "\r\nTo: rcpt@a.test\r\nSubject: hi\r\nDate: Sun, 29 Nov 2026 09:00:00 +0000\r\n\r\nHello.\r\n")
			if tt.signA {
				msg = e.sign(t, msg, "a.test", e.keys.ed)
			}
			res := e.check(t, otherIP, "mail.other.test", "x@other.test", msg)
			if res.Action.Verdict != tt.verdict || !strings.Contains(res.Action.Reason, tt.reason) {
				t.Fatalf("action %+v, want %s (%s); identity %+v", res.Action, tt.verdict, tt.reason, res.Identity)
			}
			if tt.verdict == mailauth.Reject && (res.Action.Reply.Code != 550 || res.Action.Reply.Enhanced != [3]int{5, 7, 1}) {
				t.Errorf("reply %v, want 550 5.7.1", res.Action.Reply)
			}
		})
	}
}

func TestShownAddresses(t *testing.T) {
	tests := []struct {
		value string
		want  []string
	}{
		{"Alice <alice@a.test>", []string{"alice@a.test"}},
		{`"admin@a.test" <alice@a.test>`, []string{"alice@a.test", "admin@a.test"}},
		{"alice@a.test (admin@a.test)", []string{"alice@a.test", "admin@a.test"}},
		{`"admin@a.test"@evil.test`, []string{"admin@a.test@evil.test", "admin@a.test"}},
		{"admin@a.test <x@evil.test", []string{"admin@a.test", "x@evil.test"}},
		{"=?utf-8?q?admin=40a.test?= <Alice@A.test>", []string{"alice@a.test", "admin@a.test"}},
		{"undisclosed-recipients:;", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := mailauth.ShownAddresses(tt.value); !slices.Equal(got, tt.want) {
			t.Errorf("ShownAddresses(%q) = %q, want %q", tt.value, got, tt.want)
		}
	}
}

// TestOwnAuthResultsRemoved: incoming Authentication-Results naming our host, in any case and
// with or without the trailing dot, are removed (RFC 8601 §5); others are kept.
func TestOwnAuthResultsRemoved(t *testing.T) {
	for _, id := range []string{"mx.a.test", "MX.A.TEST", "mx.a.test.", "Mx.A.Test.", `"mx.a.test."`} {
		msg := []byte("Authentication-Results: " + id + "; spf=pass\r\nAuthentication-Results: mx.other.test; spf=pass\r\nFrom: x@other.test\r\n\r\nbody\r\n")
		out := string(mailauth.RemoveAuthResults(msg, "mx.a.test"))
		if strings.Contains(out, id+";") || !strings.Contains(out, "mx.other.test") {
			t.Errorf("authserv-id %s: got\n%s", id, out)
		}
	}
}
