package admin

import (
	"errors"
	"net"
	"strings"

	"mailstead/settings"
)

// The admin pages' settings, read at each request (so every change applies at once).
var (
	SettingPublicIPs = settings.Def{Key: "admin.public_ips", Service: "DNS records", Kind: settings.String,
		Help:  "this server's public IPv4/IPv6 addresses, separated by commas or spaces, for the A/AAAA and PTR records; empty: the bind address or the network interfaces' global addresses",
		Check: func(v string) error { _, err := ParsePublicIPs(v); return err }}
	SettingPort25Probe = settings.Def{Key: "admin.port25_probe", Service: "DNS records", Kind: settings.HostPort,
		Default: "gmail-smtp-in.l.google.com:25",
		Help:    "HOST:PORT of an SMTP server the DNS page connects to, to check that outbound port 25 is open"}
	SettingMTASTSMode = settings.Def{Key: "admin.mta_sts_mode", Service: "DNS records", Kind: settings.Enum,
		Default: "testing", Choices: []string{"testing", "enforce", "none"},
		Help: "MTA-STS policy mode published for every domain (RFC 8461 §3.2)"}
)

// Settings are the definitions of this package's settings.
func Settings() []settings.Def {
	return []settings.Def{SettingPublicIPs, SettingPort25Probe, SettingMTASTSMode}
}

// ParsePublicIPs reads the admin.public_ips setting: addresses separated by commas or spaces.
// It is the one parser of that setting (the DNS records and the certificate manager's check
// that a name points here both use it).
func ParsePublicIPs(v string) ([]net.IP, error) {
	var ips []net.IP
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		ip := net.ParseIP(f)
		if ip == nil {
			return nil, errors.New("give IPv4 or IPv6 addresses separated by commas")
		}
		ips = append(ips, ip)
	}
	return ips, nil
}
