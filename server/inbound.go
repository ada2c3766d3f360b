package server

import (
	"context"
	"path/filepath"
	"strings"

	"mailstead/mailauth"
	"mailstead/smtp"
)

// authChecker builds port 25's sender authentication (SPF, DKIM, DMARC, iprev, DNSBL:
// mailauth) with its settings; the smtp package calls it at MAIL FROM and after DATA.
func (s *Server) authChecker(ctx context.Context) (*mailauth.Checker, error) {
	toJunk, err := s.store.Setting(ctx, "mailauth.dmarc_reject_to_junk")
	if err != nil {
		return nil, err
	}
	noFromToJunk, err := s.store.Setting(ctx, "mailauth.no_from_to_junk")
	if err != nil {
		return nil, err
	}
	zones, err := s.store.Setting(ctx, "mailauth.dnsbl")
	if err != nil {
		return nil, err
	}
	return &mailauth.Checker{
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
	}, nil
}

// smtpSpool returns the one spool of the SMTP listeners, in the data directory, with the server-wide
// budget of message bytes in flight; made on first use, which also removes what a killed run
// left there.
func (s *Server) smtpSpool() (*smtp.Spool, error) {
	s.spoolOnce.Do(func() {
		s.spool, s.spoolErr = smtp.NewSpool(filepath.Join(s.opts.DataDir, "spool"), 0, smtp.NewBudget(smtp.DefaultInFlightBudget))
	})
	return s.spool, s.spoolErr
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
