package smtp

import (
	"context"
	"errors"
	"net"
	"time"

	"mailstead/settings"
)

// The settings of the SMTP listeners. The limits marked live are taken by each new connection
// from the Limits last given to SetLimits; the connection limits and the idle timeout belong to
// the listener and apply at the next start.
var (
	SettingMaxMessageSize = settings.Def{Key: "smtp.max_message_size", Service: "SMTP", Kind: settings.Int,
		Default: "52428800", Min: 64 << 10, Max: 2 << 30,
		Help: "largest accepted message in bytes (SIZE, RFC 1870); IMAP APPEND takes it at the next start"}
	SettingMaxRecipients = settings.Def{Key: "smtp.max_recipients", Service: "SMTP", Kind: settings.Int,
		Default: "100", Min: 1, Max: 10000, Help: "recipients per message; one more gets 452 4.5.3 (RFC 5321 §4.5.3.1.8)"}
	// The command line limit: RFC 5321 §4.5.3.1.4 asks for at least 512 octets, and extension
	// parameters make lines longer. Message lines are bounded by the message size alone.
	SettingMaxLineLength = settings.Def{Key: "smtp.max_line_length", Service: "SMTP", Kind: settings.Int,
		Default: "4096", Min: 512, Max: 65536, Help: "longest command line accepted, in bytes"}
	SettingIdleTimeout = settings.Def{Key: "smtp.idle_timeout", Service: "SMTP", Kind: settings.Duration,
		Default: "5m", Min: int64(10 * time.Second), Max: int64(time.Hour), Restart: true,
		Help: "time allowed between two reads from an SMTP client"}
	SettingMaxConns = settings.Def{Key: "smtp.max_connections", Service: "SMTP", Kind: settings.Int,
		Default: "500", Min: 1, Max: 100000, Restart: true, Help: "concurrent SMTP connections in all"}
	SettingMaxConnsPerIP = settings.Def{Key: "smtp.max_connections_per_ip", Service: "SMTP", Kind: settings.Int,
		Default: "20", Min: 1, Max: 10000, Restart: true, Help: "concurrent SMTP connections from one IP"}
	SettingOverQuotaTemporary = settings.Def{Key: "smtp.over_quota_temporary", Service: "SMTP", Kind: settings.Bool, Default: "false",
		Restart: true, Help: "answer mail for an account over its quota 452 4.2.2 (the sender retries) instead of 552 5.2.2 (refused)"}
	// LMTP takes mail unauthenticated, so it listens on a loopback address only.
	SettingLMTPListen = settings.Def{Key: "lmtp.listen", Service: "SMTP", Kind: settings.HostPort, Restart: true,
		Help: "loopback HOST:PORT where LMTP (RFC 2033) is served besides the lmtp.sock socket in the data directory; empty: the socket only",
		Check: func(v string) error {
			host, _, _ := net.SplitHostPort(v)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return errors.New("LMTP takes mail unauthenticated: give a loopback address such as 127.0.0.1:2424")
			}
			return nil
		}}
	SettingMaxErrors = settings.Def{Key: "smtp.max_errors", Service: "SMTP", Kind: settings.Int,
		Default: "10", Min: 1, Max: 1000, Help: "protocol errors allowed per SMTP session before it is closed"}
)

// Settings are the definitions of this package's settings.
func Settings() []settings.Def {
	return []settings.Def{SettingMaxMessageSize, SettingMaxRecipients, SettingMaxLineLength, SettingIdleTimeout,
		SettingMaxConns, SettingMaxConnsPerIP, SettingMaxErrors, SettingOverQuotaTemporary, SettingLMTPListen}
}

// LimitsFrom reads the limits from the stored settings (defaults for what is unset). A stored
// value its definition refuses is replaced by the default and reported in the error, after the
// other limits are read.
func LimitsFrom(ctx context.Context, src settings.Source) (Limits, error) {
	var lim Limits
	var errs []error
	num := func(d settings.Def) int64 {
		n, err := d.Int(ctx, src)
		errs = append(errs, err)
		return n
	}
	lim.MaxMessageSize = num(SettingMaxMessageSize)
	lim.MaxRecipients = int(num(SettingMaxRecipients))
	lim.MaxLineLength = int(num(SettingMaxLineLength))
	lim.MaxConns = int(num(SettingMaxConns))
	lim.MaxConnsPerIP = int(num(SettingMaxConnsPerIP))
	lim.MaxErrors = int(num(SettingMaxErrors))
	d, err := SettingIdleTimeout.Duration(ctx, src)
	lim.IdleTimeout = d
	// Not settings (yet): the transfer-rate floor and the TLS handshake bound.
	lim.MinDataRate, lim.DataGrace, lim.HandshakeTimeout = 4<<10, time.Minute, 30*time.Second
	return lim, errors.Join(append(errs, err)...)
}

// defaultLimits are the limits of the settings' defaults.
func defaultLimits() Limits {
	lim, _ := LimitsFrom(context.Background(), noSettings{})
	return lim
}

type noSettings struct{}

func (noSettings) SettingValue(context.Context, string) (string, bool, error) { return "", false, nil }
