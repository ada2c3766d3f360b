package server

import (
	"context"
	"fmt"
	"strings"

	"mailstead/admin"
	"mailstead/mailauth"
	"mailstead/manage"
	"mailstead/store"
)

// manageDNSZone is `mailstead dns-records [DOMAIN]`: every record the admin page's DNS wizard
// shows (server addresses and PTR, MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV, autoconfig,
// CAA), as a zone file with each record's reason as a comment. The hostname's own records come
// once, before the domains'. Ports are the standard ones: the file is for real DNS.
func manageDNSZone(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, _ string) (string, error) {
	if len(args) > 1 {
		return "", usage("dns-records [DOMAIN]")
	}
	var names []string
	if len(args) == 1 {
		d, err := store.CanonicalDomain(args[0])
		if err != nil {
			return "", err
		}
		if ok, err := st.IsLocalDomain(ctx, d); err != nil || !ok {
			return "", fmt.Errorf("domain %s: %w", d, store.ErrNotOurDomain)
		}
		names = []string{d}
	} else {
		ds, err := st.Domains(ctx)
		if err != nil {
			return "", err
		}
		for _, d := range ds {
			names = append(names, d.Name)
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no domains yet: run setup first")
	}
	ips := admin.PublicIPs(ctx, st, admin.InterfaceIPs)
	dkim := func(ctx context.Context, domain string) ([]admin.DKIMKey, error) {
		keys, err := mailauth.Keys(ctx, st, domain) // reading records never makes keys: domain-add does
		if err != nil {
			return nil, err
		}
		out := make([]admin.DKIMKey, len(keys))
		for i, k := range keys {
			out[i] = admin.DKIMKey{Selector: k.Selector, TXT: k.TXT()}
		}
		return out, nil
	}
	var b strings.Builder
	if len(ips) == 0 {
		b.WriteString("; this server's public address is unknown: set admin.public_ips to get its A/AAAA and PTR records\n")
	}
	for i, name := range names {
		recs, _, err := admin.RecordsFor(ctx, st, name, ips, admin.StandardPorts, dkim)
		if err != nil {
			return "", err
		}
		if i > 0 { // the hostname's records were printed with the first domain
			kept := recs[:0]
			for _, r := range recs {
				if r.Group != "Server" {
					kept = append(kept, r)
				}
			}
			recs = kept
			b.WriteString("\n")
		}
		b.WriteString(admin.ZoneFile("DNS records for "+name+" (mailstead dns-records)", recs))
	}
	return b.String(), nil
}
