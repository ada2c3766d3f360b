package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// SettingDef documents one setting where it is defined: the admin page and `mailstead settings`
// are generated from this list.
type SettingDef struct {
	Key     string
	Default string
	Help    string
}

// settingDefs is every setting mailstead knows. Add new ones here, with a default and one line.
var settingDefs = []SettingDef{
	{"hostname", "", "the mail server's own name (MX target, EHLO name, certificate name)"},
	{"smtp.max_message_size", "52428800", "largest accepted message in bytes"},
	{"smtp.max_recipients", "100", "recipients per message"},
	{"smtp.max_line_length", "4096", "longest command line accepted, in bytes"},
	{"smtp.idle_timeout", "5m", "time allowed between two reads from an SMTP client"},
	{"smtp.max_connections", "500", "concurrent SMTP connections in all"},
	{"smtp.max_connections_per_ip", "20", "concurrent SMTP connections from one IP"},
	{"connections.max", "1000", "open connections in all, on each listener (every port, 80 and 443 included); applies at restart"},
	{"connections.max_per_ip", "32", "open connections from one IPv4 address or IPv6 /64, on each listener; applies at restart"},
	{"smtp.max_errors", "10", "protocol errors allowed per SMTP session before it is closed"},
	{"smtp.over_quota_temporary", "false", "answer mail for an account over its quota 452 4.2.2 (the sender retries) instead of 552 5.2.2 (refused); applies at restart"},
	{"mailauth.dmarc_reject_to_junk", "false", "deliver mail that fails DMARC with p=reject to Junk instead of refusing it"},
	{"lmtp.listen", "", "loopback HOST:PORT where LMTP (RFC 2033) is served besides the lmtp.sock socket in the data directory; empty: the socket only"},
	{"mailauth.no_from_to_junk", "false", "deliver mail without a single valid From: address (RFC 5322 section 3.6) to Junk instead of refusing it"},
	{"mailauth.dnsbl", "", "DNS blocklists checked for every connecting IP: comma-separated zones, each with ':reject' to refuse listed mail instead of sending it to Junk"},
	{"setup.token", "", "one-time token of the setup wizard; empty once setup is done"},
	{"acme.directory", "production", `ACME directory: "production" (Let's Encrypt), "staging", or a directory URL`},
	{"acme.email", "", "contact address given to the certificate authority"},
	{"tls.cert_file", "", "manual mode: PEM certificate chain file served instead of ACME certificates"},
	{"tls.key_file", "", "manual mode: PEM private key file for tls.cert_file"},
	{"queue.retry_initial", "5m", "first retry delay of an outbound message; each later one doubles it"},
	{"queue.retry_max", "4h", "longest delay between two delivery attempts of an outbound message"},
	{"queue.max_age", "120h", "how long an outbound message is retried before it bounces"},
	{"queue.delay_notice", "4h", "age of an undelivered message at which its sender is told of the delay (once)"},
	{"queue.concurrency", "20", "outbound deliveries running at once in all"},
	{"queue.per_destination", "4", "outbound deliveries running at once to one recipient domain"},
	{"queue.timeout", "5m", "time allowed for each reply of a remote SMTP server"},
	{"queue.smarthost", "", "HOST:PORT of a relay that takes all outbound mail (port 465: implicit TLS, else STARTTLS); empty: deliver to each domain's MX"},
	{"queue.smarthost_user", "", "user name for AUTH at the smarthost"},
	{"queue.smarthost_password", "", "password for AUTH at the smarthost"},
	{"queue.smarthost_tls", "", "TLS at the smarthost: implicit or starttls; empty: implicit on port 465, else starttls"},
	{"metrics.listen", "127.0.0.1:9025", "HOST:PORT of the Prometheus /metrics page, loopback by default (--port-offset is added to the port); off: no page"},
	{"admin.public_ips", "", "this server's public IPv4/IPv6 addresses, comma separated, for the A/AAAA and PTR records; empty: the bind address or the network interfaces' global addresses"},
	{"admin.port25_probe", "gmail-smtp-in.l.google.com:25", "HOST:PORT of an SMTP server the DNS page connects to, to check that outbound port 25 is open"},
	{"admin.mta_sts_mode", "testing", "MTA-STS policy mode published for every domain: testing, enforce or none (RFC 8461)"},
}

// Settings lists every known setting.
func Settings() []SettingDef {
	out := append([]SettingDef(nil), settingDefs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func settingDef(key string) (SettingDef, bool) {
	for _, d := range settingDefs {
		if d.Key == key {
			return d, true
		}
	}
	return SettingDef{}, false
}

// ErrUnknownSetting is returned for a key that is not in the settings list.
var ErrUnknownSetting = errors.New("unknown setting")

// Setting returns the value of key, or its default when unset.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	def, ok := settingDef(key)
	if !ok {
		return "", fmt.Errorf("%q: %w", key, ErrUnknownSetting)
	}
	var v string
	err := s.db.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return def.Default, nil
	}
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	return v, nil
}

// SettingInt returns an integer setting.
func (s *Store) SettingInt(ctx context.Context, key string) (int64, error) {
	v, err := s.Setting(ctx, key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("setting %s=%q: not an integer", key, v)
	}
	return n, nil
}

// SettingDuration returns a duration setting such as "5m".
func (s *Store) SettingDuration(ctx context.Context, key string) (time.Duration, error) {
	v, err := s.Setting(ctx, key)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("setting %s=%q: not a duration", key, v)
	}
	return d, nil
}

// SetSetting stores value for key. An empty value restores the default.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if _, ok := settingDef(key); !ok {
		return fmt.Errorf("%q: %w", key, ErrUnknownSetting)
	}
	return s.Update(ctx, func(t *Tx) error { return t.putSetting(key, value) })
}

// putSetting stores a setting inside a write and announces it after the commit.
func (t *Tx) putSetting(key, value string) error {
	var err error
	if value == "" {
		_, err = t.Exec("DELETE FROM settings WHERE key = ?", key)
	} else {
		_, err = t.Exec(`INSERT INTO settings (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	}
	if err != nil {
		return fmt.Errorf("setting %s: %w", key, err)
	}
	t.Publish(Event{Kind: SettingChanged, Name: key})
	return nil
}
