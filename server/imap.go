package server

import (
	"context"
	"errors"
	"fmt"

	"mailstead/imap"
	"mailstead/smtp"
)

// startIMAP serves IMAP on 143 (STARTTLS) and 993 (implicit TLS) from one imap.Server, so both
// ports share sessions' limits and the mailbox event stream.
func (s *Server) startIMAP(ctx context.Context) error {
	size, err := smtp.SettingMaxMessageSize.Int(ctx, s.store)
	if err != nil {
		s.log.Warn("imap append limit", "err", err)
	}
	perIP, err1 := imap.SettingMaxConnsPerIP.Int(ctx, s.store)
	perAccount, err2 := imap.SettingMaxConnsPerAccount.Int(ctx, s.store)
	if err := errors.Join(err1, err2); err != nil {
		s.log.Warn("imap connection limits", "err", err) // the defaults stand in
	}
	srv, err := imap.NewServer(imap.Config{
		MailLog:            s.maillog,
		Store:              s.store,
		TLSConfig:          s.certs.TLSConfig(),
		Logger:             s.log.With("service", "imap"),
		AllowInsecureAuth:  s.opts.Dev, // and even then only for loopback clients
		MaxMessageSize:     size,
		Hostname:           s.Hostname,
		Logins:             s.logins,
		Refused:            s.metrics.countRefusals("imap"),
		MaxConnsPerIP:      int(perIP),
		MaxConnsPerAccount: int(perAccount),
	})
	if err != nil {
		return fmt.Errorf("imap: %w", err)
	}
	plain, err := s.listen(PortIMAP)
	if err != nil {
		return err
	}
	implicit, err := s.listen(PortIMAPS)
	if err != nil {
		plain.Close()
		return err
	}
	stop := onceErr(srv.Shutdown)
	s.serve("imap", plain, srv.Serve, stop)
	s.serve("imaps", implicit, srv.ServeTLS, stop)
	return nil
}
