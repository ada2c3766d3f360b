package imap

import "mailstead/settings"

// The settings of the IMAP listeners' own limits, read at start (each port also has the
// listener limits of connlimit, which are larger and refuse without a word).
var (
	SettingMaxConnsPerIP = settings.Def{Key: "imap.max_connections_per_ip", Service: "IMAP", Kind: settings.Int,
		Default: "20", Min: 1, Max: 10000, Restart: true,
		Help: "IMAP connections from one IPv4 address or IPv6 /64; one more is told BYE [UNAVAILABLE]"}
	SettingMaxConnsPerAccount = settings.Def{Key: "imap.max_connections_per_account", Service: "IMAP", Kind: settings.Int,
		Default: "30", Min: 1, Max: 10000, Restart: true,
		Help: "logged-in IMAP sessions of one account; one more login gets NO [LIMIT]"}
)

// Settings are the definitions of this package's settings.
func Settings() []settings.Def {
	return []settings.Def{SettingMaxConnsPerIP, SettingMaxConnsPerAccount}
}
