package pop3

import "mailstead/settings"

// The settings of the POP3 listeners' own limits, read at start.
var (
	SettingMaxConns = settings.Def{Key: "pop3.max_connections", Service: "POP3", Kind: settings.Int,
		Default: "500", Min: 1, Max: 100000, Restart: true, Help: "POP3 sessions in all, both ports together"}
	SettingMaxConnsPerIP = settings.Def{Key: "pop3.max_connections_per_ip", Service: "POP3", Kind: settings.Int,
		Default: "20", Min: 1, Max: 10000, Restart: true,
		Help: "POP3 sessions from one IPv4 address or IPv6 /64; one more is told -ERR [SYS/TEMP]"}
)

// Settings are the definitions of this package's settings.
func Settings() []settings.Def { return []settings.Def{SettingMaxConns, SettingMaxConnsPerIP} }
