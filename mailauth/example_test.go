package mailauth_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"

	"github.com/emersion/go-smtp"

	"mailstead/dns"
	"mailstead/mailauth"
)

// How the port-25 receiver uses the package (compiled, not run).
func Example() {
	ctx := context.Background()
	checker := &mailauth.Checker{
		Resolver: dns.New(""), // or dns.New(*dnsFlag)
		Hostname: "mx.example.org",
		Policy: mailauth.Policy{
			DMARCRejectToJunk: false, // a setting
			IsLocalDomain:     func(d string) bool { return d == "example.org" },
		},
	}
	toSMTP := func(r mailauth.Reply) *smtp.SMTPError {
		return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
	}

	// Session.Mail:
	if reply := checker.CheckSender(ctx, "alice@sender.example"); reply != nil {
		_ = toSMTP(*reply)
	}

	// Session.Data, once the whole message is read (or spooled):
	msg := []byte("From: alice@sender.example\r\n\r\nHello\r\n")
	in := mailauth.Input{IP: net.ParseIP("192.0.2.1"), Helo: "mail.sender.example",
		MailFrom: "alice@sender.example", Rcpts: []string{"bob@example.org"}, Message: bytes.NewReader(msg)}
	res, err := checker.Check(ctx, in)
	if err != nil {
		return // bad input: answer 451
	}
	slog.LogAttrs(ctx, slog.LevelInfo, "received", res.LogAttrs(in)...)
	switch res.Action.Verdict {
	case mailauth.Reject, mailauth.TempFail:
		_ = toSMTP(res.Action.Reply)
	case mailauth.Junk, mailauth.Accept:
		stored := checker.Stamp(msg, res) // deliver to Junk or INBOX
		_ = stored
	}
}
