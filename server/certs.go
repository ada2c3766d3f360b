package server

import (
	"context"
	"net"
	"strings"

	"mailstead/acme"
	"mailstead/manage"
	"mailstead/store"
)

// certConfig builds the certificate manager's configuration for hostname from flags and settings.
// Start and every later change (hostname, ACME or manual-certificate settings) use it, so the
// manager always sees the whole configuration.
func (s *Server) certConfig(ctx context.Context, hostname string) (acme.Config, error) {
	cfg, err := certSettings(ctx, s.store, hostname)
	cfg.DisableACME = s.opts.Dev
	cfg.HTTPPort = PortHTTP + s.opts.PortOffset
	cfg.HTTPSPort = PortHTTPS + s.opts.PortOffset
	cfg.ExtraHosts = s.domainHosts
	cfg.HTTPClient = s.opts.ACMEClient
	return cfg, err
}

// certSettings is the part of the certificate configuration that lives in the settings.
func certSettings(ctx context.Context, st *store.Store, hostname string) (acme.Config, error) {
	cfg := acme.Config{Hostname: hostname}
	for key, dst := range map[string]*string{acme.SettingDirectory: &cfg.Directory, acme.SettingEmail: &cfg.Email,
		acme.SettingCertFile: &cfg.CertFile, acme.SettingKeyFile: &cfg.KeyFile} {
		v, err := st.Setting(ctx, key)
		if err != nil {
			return cfg, err
		}
		*dst = v
	}
	if ips := publicIPs(ctx, st); len(ips) > 0 {
		// Behind NAT the public address is on no interface; the operator names it.
		cfg.IsOwnIP = func(ip net.IP) bool {
			for _, own := range ips {
				if own.Equal(ip) {
					return true
				}
			}
			return false
		}
	}
	return cfg, nil
}

// publicIPs reads the optional admin.public_ips setting (comma-separated addresses).
func publicIPs(ctx context.Context, st *store.Store) []net.IP {
	v, err := st.Setting(ctx, "admin.public_ips")
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, f := range strings.Split(v, ",") {
		if ip := net.ParseIP(strings.TrimSpace(f)); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

// reconfigureCerts applies changed certificate settings to the running manager.
func (s *Server) reconfigureCerts(ctx context.Context) {
	host, err := s.store.Setting(ctx, "hostname")
	if err != nil || host == "" {
		host = s.Hostname()
	}
	cfg, err := s.certConfig(ctx, host)
	if err == nil {
		err = s.certs.Reconfigure(ctx, cfg)
	}
	if err != nil {
		s.log.Error("certificate settings not applied", "err", err)
	}
}

// followSettings applies each stored setting change to the running server: the store announces
// it after the commit, whichever path made it (control socket, admin page, API).
func (s *Server) followSettings(ctx context.Context) {
	keys := make(chan string, 64)
	cancel := s.store.Subscribe(func(ev store.Event) {
		if ev.Kind != store.SettingChanged {
			return
		}
		select {
		case keys <- ev.Name:
		default:
			s.log.Warn("setting change not applied: too many at once", "key", ev.Name)
		}
	})
	s.goBackground(func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case key := <-keys:
				s.applySetting(ctx, key)
			}
		}
	})
}

func (s *Server) applySetting(ctx context.Context, key string) {
	switch {
	case key == "hostname":
		if host, err := s.store.Setting(ctx, "hostname"); err == nil && host != "" {
			s.hostnameChanged(ctx, host)
		}
	case strings.HasPrefix(key, "acme.") || strings.HasPrefix(key, "tls.") || key == "admin.public_ips":
		s.reconfigureCerts(ctx)
	}
}

// manageCerts is `mailstead certs`: what each certificate is, where it came from, when it
// expires and the last error. The running server answers from memory (control.go); without one,
// the status is read from the data directory without writing to it.
func manageCerts(ctx context.Context, ops *manage.Ops, args []string, _ string) (string, error) {
	st := ops.Store()
	if len(args) != 0 {
		return "", usage("certs")
	}
	host, err := st.Setting(ctx, "hostname")
	if err != nil {
		return "", err
	}
	cfg, err := certSettings(ctx, st, host)
	if err != nil {
		return "", err
	}
	status, err := acme.ReadStatus(ctx, cfg, st)
	if err != nil {
		return "", err
	}
	return status.String() + "(server not running)\n", nil
}
