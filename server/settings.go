package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"mailstead/acme"
	"mailstead/admin"
	"mailstead/connlimit"
	"mailstead/imap"
	"mailstead/mailauth"
	"mailstead/manage"
	"mailstead/pop3"
	"mailstead/queue"
	"mailstead/settings"
	"mailstead/smtp"
	"mailstead/store"
)

// SettingMetricsListen is where the Prometheus page listens, opened at start.
var SettingMetricsListen = settings.Def{Key: "metrics.listen", Service: "Monitoring", Kind: settings.String, Default: "127.0.0.1:9025",
	Restart: true, Help: "HOST:PORT of the Prometheus /metrics page, loopback by default (--port-offset is added to the port); off: no page",
	Check: func(v string) error {
		if v == "off" {
			return nil
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return errors.New("give HOST:PORT, or off")
		}
		return nil
	}}

// Registry gathers the settings of every package. A package that adds settings defines them
// next to the code that reads them and is listed here once.
func Registry() (*settings.Registry, error) {
	return settings.NewRegistry(
		manage.Settings(),
		smtp.Settings(),
		mailauth.Settings(),
		queue.Settings(),
		acme.Settings(),
		admin.Settings(),
		connlimit.Settings(),
		imap.Settings(),
		pop3.Settings(),
		[]settings.Def{SettingMetricsListen},
	)
}

// settingChange is one item of the applier's queue: a changed key, or a waiter to tell once
// every change queued before it is applied.
type settingChange struct {
	key     string
	applied chan struct{}
}

// followSettings applies each stored setting change to the running server: the store announces
// it after the commit, whichever path made it (control socket, admin page, API). A setting
// whose definition says Restart is read at start only.
func (s *Server) followSettings(ctx context.Context) {
	s.changes = make(chan settingChange, 256)
	s.applierDone = make(chan struct{})
	cancel := s.store.Subscribe(func(ev store.Event) {
		if ev.Kind != store.SettingChanged {
			return
		}
		select {
		case s.changes <- settingChange{key: ev.Name}:
		default:
			s.log.Error("setting change not applied: too many at once; restart mailstead", "key", ev.Name)
		}
	})
	s.goBackground(func() {
		defer close(s.applierDone)
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-s.changes:
				if c.applied != nil {
					close(c.applied)
					continue
				}
				s.applySetting(ctx, c.key)
			}
		}
	})
}

// settingsApplied returns once every setting change committed so far is applied, so an
// operation answers "done" only when the running server acts on it. The store queues a change
// before its Update returns, so a waiter queued after it is answered after it.
func (s *Server) settingsApplied(ctx context.Context) {
	if s.changes == nil {
		return
	}
	done := make(chan struct{})
	select {
	case s.changes <- settingChange{applied: done}:
	case <-ctx.Done():
		return
	case <-s.applierDone: // shutting down: nothing applies any more
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	case <-s.applierDone:
	}
}

// applySetting hands a changed setting to its owner.
func (s *Server) applySetting(ctx context.Context, key string) {
	var err error
	switch prefix, _, _ := strings.Cut(key, "."); {
	case key == manage.SettingHostname.Key:
		var host string
		if host, err = manage.SettingHostname.String(ctx, s.store); err == nil && host != "" {
			s.hostnameChanged(ctx, host)
		}
	case prefix == "smtp":
		err = s.applySMTPLimits(ctx)
	case prefix == "mailauth":
		err = s.applyInbound(ctx)
	case prefix == "queue":
		if q := s.queue.Load(); q != nil {
			q.SettingsChanged()
		}
	case prefix == "acme" || prefix == "tls" || key == admin.SettingPublicIPs.Key:
		s.reconfigureCerts(ctx)
	}
	if err != nil {
		s.log.Error("setting not applied", "key", key, "err", err)
		return
	}
	s.log.Info("setting changed", "key", key)
}

// applySMTPLimits gives the SMTP listeners the stored limits for their next connections.
func (s *Server) applySMTPLimits(ctx context.Context) error {
	lim, err := smtp.LimitsFrom(ctx, s.store)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range s.smtpServers {
		srv.SetLimits(lim)
	}
	if err != nil {
		return fmt.Errorf("smtp limits: %w", err)
	}
	return nil
}
