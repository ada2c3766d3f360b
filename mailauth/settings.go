package mailauth

import (
	"errors"
	"strings"

	"mailstead/settings"
)

// The settings of the inbound checks. The server rebuilds its Checker from them when one
// changes, so each applies to the next message.
var (
	SettingDMARCRejectToJunk = settings.Def{Key: "mailauth.dmarc_reject_to_junk", Service: "Inbound checks", Kind: settings.Bool,
		Default: "false", Help: "deliver mail that fails DMARC with p=reject to Junk instead of refusing it"}
	SettingNoFromToJunk = settings.Def{Key: "mailauth.no_from_to_junk", Service: "Inbound checks", Kind: settings.Bool,
		Default: "false", Help: "deliver mail without a single valid From: address (RFC 5322 section 3.6) to Junk instead of refusing it"}
	SettingDNSBL = settings.Def{Key: "mailauth.dnsbl", Service: "Inbound checks", Kind: settings.String,
		Help:  "DNS blocklists checked for every connecting IP: comma-separated zones, each with ':reject' to refuse listed mail instead of sending it to Junk",
		Check: func(v string) error { _, err := ParseDNSBL(v); return err }}
)

// Settings are the definitions of this package's settings.
func Settings() []settings.Def {
	return []settings.Def{SettingDMARCRejectToJunk, SettingNoFromToJunk, SettingDNSBL}
}

// ParseDNSBL reads the mailauth.dnsbl setting: "zone1, zone2:reject".
func ParseDNSBL(v string) ([]DNSBLZone, error) {
	var zones []DNSBLZone
	for _, z := range strings.Split(v, ",") {
		z = strings.TrimSpace(z)
		if z == "" {
			continue
		}
		name, action, hasAction := strings.Cut(z, ":")
		if hasAction && action != "reject" {
			return nil, errors.New("a zone may end in :reject, nothing else")
		}
		if name == "" || strings.ContainsAny(name, " /@") || !strings.Contains(name, ".") {
			return nil, errors.New("give DNS zones such as zen.spamhaus.org, comma-separated")
		}
		zones = append(zones, DNSBLZone{Zone: strings.ToLower(name), Reject: hasAction})
	}
	return zones, nil
}
