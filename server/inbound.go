package server

import (
	"context"
	"errors"
	"path/filepath"

	"mailstead/mailauth"
	"mailstead/smtp"
)

// authChecker builds port 25's sender authentication (SPF, DKIM, DMARC, iprev, DNSBL:
// mailauth) with its settings; the smtp package calls it at MAIL FROM and after DATA. A stored
// value its definition refuses is logged and its default used.
func (s *Server) authChecker(ctx context.Context) (*mailauth.Checker, error) {
	toJunk, err1 := mailauth.SettingDMARCRejectToJunk.Bool(ctx, s.store)
	noFromToJunk, err2 := mailauth.SettingNoFromToJunk.Bool(ctx, s.store)
	zones, err3 := mailauth.SettingDNSBL.String(ctx, s.store)
	dnsbl, err4 := mailauth.ParseDNSBL(zones)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		s.log.Warn("inbound check settings", "err", err)
	}
	return &mailauth.Checker{
		Resolver: s.mailResolver,
		Hostname: s.Hostname(),
		Policy: mailauth.Policy{
			DMARCRejectToJunk: toJunk,
			NoFromToJunk:      noFromToJunk,
			IsLocalDomain: func(d string) bool {
				ok, _ := s.store.IsLocalDomain(context.Background(), d)
				return ok
			},
		},
		DNSBL: dnsbl,
	}, nil
}

// applyInbound gives port 25 the checks of the settings now: the next message is judged by them.
func (s *Server) applyInbound(ctx context.Context) error {
	auth, err := s.authChecker(ctx)
	if err != nil {
		return err
	}
	if mx := s.mx.Load(); mx != nil {
		mx.SetAuth(auth)
	}
	return nil
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
