package server

import (
	"context"
	"net"

	"mailstead/acme"
	"mailstead/admin"
	"mailstead/manage"
	"mailstead/settings"
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
	for _, it := range []struct {
		def settings.Def
		dst *string
	}{{acme.SettingDirectory, &cfg.Directory}, {acme.SettingEmail, &cfg.Email},
		{acme.SettingCertFile, &cfg.CertFile}, {acme.SettingKeyFile, &cfg.KeyFile}} {
		v, err := it.def.String(ctx, st)
		if err != nil {
			return cfg, err
		}
		*it.dst = v
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

// publicIPs reads the optional admin.public_ips setting, with the admin page's parser.
func publicIPs(ctx context.Context, st *store.Store) []net.IP {
	v, err := admin.SettingPublicIPs.String(ctx, st)
	if err != nil {
		return nil
	}
	ips, _ := admin.ParsePublicIPs(v)
	return ips
}

// reconfigureCerts applies changed certificate settings to the running manager.
func (s *Server) reconfigureCerts(ctx context.Context) {
	host, err := manage.SettingHostname.String(ctx, s.store)
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

// manageCerts is `mailstead certs`: what each certificate is, where it came from, when it
// expires and the last error. The running server answers from memory (control.go); without one,
// the status is read from the data directory without writing to it.
func manageCerts(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, _ string) (string, error) {
	if len(args) != 0 {
		return "", usage("certs")
	}
	host, err := manage.SettingHostname.String(ctx, st)
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
