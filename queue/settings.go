package queue

import (
	"context"
	"errors"
	"log/slog"
	"time"

	defs "mailstead/settings"
)

// The queue's settings. Each applies from the next scheduling round (SettingsChanged).
var (
	SettingRetryInitial = defs.Def{Key: "queue.retry_initial", Service: "Outbound queue", Kind: defs.Duration, Default: "5m",
		Min: int64(time.Second), Max: int64(24 * time.Hour), Help: "first retry delay of an outbound message; each later one doubles it"}
	SettingRetryMax = defs.Def{Key: "queue.retry_max", Service: "Outbound queue", Kind: defs.Duration, Default: "4h",
		Min: int64(time.Minute), Max: int64(7 * 24 * time.Hour), Help: "longest delay between two delivery attempts of an outbound message"}
	// RFC 5321 §4.5.4.1: give up after at least 4-5 days.
	SettingMaxAge = defs.Def{Key: "queue.max_age", Service: "Outbound queue", Kind: defs.Duration, Default: "120h",
		Min: int64(time.Hour), Max: int64(30 * 24 * time.Hour), Help: "how long an outbound message is retried before it bounces"}
	SettingDelayNotice = defs.Def{Key: "queue.delay_notice", Service: "Outbound queue", Kind: defs.Duration, Default: "4h",
		Min: int64(time.Minute), Max: int64(30 * 24 * time.Hour), Help: "age of an undelivered message at which its sender is told of the delay (once)"}
	SettingConcurrency = defs.Def{Key: "queue.concurrency", Service: "Outbound queue", Kind: defs.Int, Default: "20",
		Min: 1, Max: 1000, Help: "outbound deliveries running at once in all"}
	SettingPerDestination = defs.Def{Key: "queue.per_destination", Service: "Outbound queue", Kind: defs.Int, Default: "4",
		Min: 1, Max: 100, Help: "outbound deliveries running at once to one recipient domain"}
	// RFC 5321 §4.5.3.2 asks for minutes per reply; 5 minutes covers the longest (DATA end).
	SettingTimeout = defs.Def{Key: "queue.timeout", Service: "Outbound queue", Kind: defs.Duration, Default: "5m",
		Min: int64(5 * time.Second), Max: int64(30 * time.Minute), Help: "time allowed for each reply of a remote SMTP server"}
	SettingSmarthost = defs.Def{Key: "queue.smarthost", Service: "Outbound queue", Kind: defs.HostPort,
		Help: "HOST:PORT of a relay that takes all outbound mail (port 465: implicit TLS, else STARTTLS); empty: deliver to each domain's MX"}
	SettingSmarthostUser = defs.Def{Key: "queue.smarthost_user", Service: "Outbound queue", Kind: defs.String,
		Help: "user name for AUTH at the smarthost"}
	SettingSmarthostPassword = defs.Def{Key: "queue.smarthost_password", Service: "Outbound queue", Kind: defs.String, Secret: true,
		Help: "password for AUTH at the smarthost (given on stdin or in the password field; never shown)"}
	SettingSmarthostTLS = defs.Def{Key: "queue.smarthost_tls", Service: "Outbound queue", Kind: defs.Enum, Choices: []string{"implicit", "starttls"},
		Help: "TLS at the smarthost: implicit or starttls; empty: implicit on port 465, else starttls"}
)

// Settings are the definitions of this package's settings.
func Settings() []defs.Def {
	return []defs.Def{SettingRetryInitial, SettingRetryMax, SettingMaxAge, SettingDelayNotice, SettingConcurrency,
		SettingPerDestination, SettingTimeout, SettingSmarthost, SettingSmarthostUser, SettingSmarthostPassword, SettingSmarthostTLS}
}

// readSettings reads the queue's settings; a stored value its definition refuses is logged and
// its default used.
func readSettings(ctx context.Context, st Store, log *slog.Logger) settings {
	var errs []error
	dur := func(d defs.Def) time.Duration {
		v, err := d.Duration(ctx, st)
		errs = append(errs, err)
		return v
	}
	num := func(d defs.Def) int {
		v, err := d.Int(ctx, st)
		errs = append(errs, err)
		return int(v)
	}
	str := func(d defs.Def) string {
		v, err := d.String(ctx, st)
		errs = append(errs, err)
		return v
	}
	set := settings{
		retryInitial:      dur(SettingRetryInitial),
		retryMax:          dur(SettingRetryMax),
		maxAge:            dur(SettingMaxAge),
		delayNotice:       dur(SettingDelayNotice),
		timeout:           dur(SettingTimeout),
		concurrency:       num(SettingConcurrency),
		perDestination:    num(SettingPerDestination),
		smarthost:         str(SettingSmarthost),
		smarthostUser:     str(SettingSmarthostUser),
		smarthostPassword: str(SettingSmarthostPassword),
		smarthostTLS:      str(SettingSmarthostTLS),
	}
	if err := errors.Join(errs...); err != nil {
		log.Warn("queue settings", "err", err)
	}
	return set
}
