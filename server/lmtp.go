package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"mailstead/smtp"
)

// LMTPSocket is the unix socket in the data directory where a local MTA or filter hands mail to
// mailstead over LMTP (RFC 2033), for example Postfix's
// `virtual_transport = lmtp:unix:/path/to/data/lmtp.sock` when it runs as the same user.
const LMTPSocket = "lmtp.sock"

// startLMTP serves LMTP on the data directory's socket and, when the lmtp.listen setting names
// one, on a loopback TCP address. Both deliver through the same store path as port 25.
func (s *Server) startLMTP(ctx context.Context) error {
	tcpAddr, err := smtp.SettingLMTPListen.String(ctx, s.store)
	if err != nil {
		return err
	}
	lm := smtp.NewLMTP(smtp.Config{
		Store:    s.store,
		Hostname: s.Hostname,
		Logger:   s.log.With("service", "lmtp"),
		MailLog:  s.maillog,
		Limits:   s.smtpLimits(ctx),
		Classify: s.classifyJunk,
	})
	s.addSMTPServer(lm)
	stop := onceErr(lm.Shutdown)
	path := filepath.Join(s.opts.DataDir, LMTPSocket)
	os.Remove(path) // a socket left by a killed server; the control socket proved none runs
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("lmtp socket: %w", err)
	}
	os.Chmod(path, 0o600)
	s.serve("lmtp", l, lm.Serve, stop)
	if tcpAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(tcpAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("lmtp.listen %q: LMTP takes mail unauthenticated, so it listens on a loopback address only", tcpAddr)
	}
	tl, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		return fmt.Errorf("lmtp listen on %s: %w", tcpAddr, err)
	}
	s.serve("lmtp", tl, lm.Serve, stop)
	return nil
}
