package connlimit

import "mailstead/settings"

// The settings of every listener's limits, read when the listeners open.
var (
	SettingMaxConns = settings.Def{Key: "connections.max", Service: "Connections", Kind: settings.Int, Default: "1000",
		Min: 1, Max: 1000000, Restart: true,
		Help: "open connections in all, on each listener (every port, 80 and 443 included)"}
	SettingMaxPerIP = settings.Def{Key: "connections.max_per_ip", Service: "Connections", Kind: settings.Int, Default: "32",
		Min: 1, Max: 100000, Restart: true,
		Help: "open connections from one IPv4 address or IPv6 /64, on each listener"}
)

// Settings are the definitions of this package's settings.
func Settings() []settings.Def { return []settings.Def{SettingMaxConns, SettingMaxPerIP} }
