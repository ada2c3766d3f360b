package server

import (
	"context"
	"strings"
	"time"

	"mailstead/junk"
	"mailstead/mailauth"
	"mailstead/smtp"
)

// inboundChecks builds the port-25 policy hooks: the MAIL FROM domain check and the SPF, DKIM,
// DMARC, iprev and DNSBL inspection of each message (mailauth), with its settings.
func (s *Server) inboundChecks(ctx context.Context) (func(context.Context, string) *smtp.Reply, func(context.Context, *smtp.Inbound) (smtp.Verdict, error), error) {
	toJunk, err := s.store.Setting(ctx, "mailauth.dmarc_reject_to_junk")
	if err != nil {
		return nil, nil, err
	}
	noFromToJunk, err := s.store.Setting(ctx, "mailauth.no_from_to_junk")
	if err != nil {
		return nil, nil, err
	}
	zones, err := s.store.Setting(ctx, "mailauth.dnsbl")
	if err != nil {
		return nil, nil, err
	}
	checker := &mailauth.Checker{
		Resolver: s.resolver,
		Hostname: s.Hostname(),
		Policy: mailauth.Policy{
			DMARCRejectToJunk: toJunk == "true",
			NoFromToJunk:      noFromToJunk == "true",
			IsLocalDomain: func(d string) bool {
				ok, _ := s.store.IsLocalDomain(context.Background(), d)
				return ok
			},
		},
		DNSBL: parseDNSBL(zones),
	}
	checkFrom := func(ctx context.Context, from string) *smtp.Reply {
		if r := checker.CheckSender(ctx, from); r != nil {
			return &smtp.Reply{Code: r.Code, Enhanced: r.Enhanced, Text: r.Text}
		}
		return nil
	}
	inspect := func(ctx context.Context, in *smtp.Inbound) (smtp.Verdict, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		input := mailauth.Input{IP: in.RemoteIP, Helo: in.Helo, MailFrom: in.MailFrom, Rcpts: in.Rcpts, Message: in.Data}
		checker := *checker
		checker.Hostname = s.Hostname() // the authserv-id follows a hostname changed while running
		res, err := checker.Check(ctx, input)
		if err != nil {
			return smtp.Verdict{}, err
		}
		v := smtp.Verdict{Attrs: authAttrs(res, input)}
		switch res.Action.Verdict {
		case mailauth.Reject, mailauth.TempFail:
			r := res.Action.Reply
			v.Reject = &smtp.Reply{Code: r.Code, Enhanced: r.Enhanced, Text: r.Text}
		default:
			// RFC 8601 §5: remove Authentication-Results that claim to be ours, add ours on top.
			v.Junk = res.Action.Verdict == mailauth.Junk
			// Likewise the junk filter's header: only ours may say what the filter thought.
			v.Data = junk.RemoveHeader(mailauth.RemoveAuthResults(in.Data, checker.Hostname), junk.HeaderName)
			v.Header = res.Header
		}
		return v, nil
	}
	return checkFrom, inspect, nil
}

// authAttrs are mailauth's log attributes less those the SMTP line already carries.
func authAttrs(res *mailauth.Result, in mailauth.Input) []any {
	var out []any
	for _, a := range res.LogAttrs(in) {
		switch a.Key {
		case "ip", "helo", "mail_from", "rcpts", "size":
			continue
		}
		out = append(out, a)
	}
	return out
}

// parseDNSBL reads the mailauth.dnsbl setting: "zone1, zone2:reject".
func parseDNSBL(setting string) []mailauth.DNSBLZone {
	var zones []mailauth.DNSBLZone
	for _, z := range strings.Split(setting, ",") {
		z = strings.TrimSpace(z)
		if z == "" {
			continue
		}
		name, action, _ := strings.Cut(z, ":")
		zones = append(zones, mailauth.DNSBLZone{Zone: name, Reject: action == "reject"})
	}
	return zones
}
