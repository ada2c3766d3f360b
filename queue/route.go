package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"

	"mailstead/dns"
)

// route lists the hosts to try for a group, in order, or gives the outcome for every recipient
// when there is nowhere to go.
func (q *Queue) route(ctx context.Context, g *group, set settings) ([]target, *outcome) {
	if set.smarthost != "" {
		host, port, err := net.SplitHostPort(set.smarthost)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			return nil, &outcome{status: deferred, code: "4.3.5", reason: fmt.Sprintf("setting queue.smarthost=%q is not HOST:PORT", set.smarthost)}
		}
		implicit := p == 465
		switch set.smarthostTLS {
		case "implicit":
			implicit = true
		case "starttls":
			implicit = false
		}
		// The relay gets our credentials: TLS with a valid certificate, always.
		return []target{{host: host, port: p, implicitTLS: implicit, requireTLS: true, why: "the smarthost setting",
			user: set.smarthostUser, pass: set.smarthostPassword}}, nil
	}
	hosts, fail := q.mxHosts(ctx, g.domain)
	if fail != nil {
		return nil, fail
	}
	port := 25 + q.cfg.PortOffset
	policy, err := q.stsPolicy(ctx, g.domain)
	if err != nil {
		q.log.Debug("queue: MTA-STS policy", "domain", g.domain, "err", err)
	}
	var ts []target
	for _, h := range hosts {
		t := target{host: h, port: port}
		if policy != nil && policy.Mode == "enforce" {
			if !policy.matches(h) {
				continue // RFC 8461 §4.1: only MX hosts the policy names
			}
			t.requireTLS, t.why = true, "the MTA-STS policy of "+g.domain
		} else if policy != nil && policy.Mode == "testing" && !policy.matches(h) {
			q.log.Info("queue: MTA-STS (testing) would refuse MX", "domain", g.domain, "mx", h)
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return nil, &outcome{status: deferred, code: "4.7.5",
			reason: fmt.Sprintf("the MTA-STS policy of %s (mode enforce) allows none of its MX hosts %s", g.domain, strings.Join(hosts, ", "))}
	}
	return ts, nil
}

// mxHosts resolves the hosts that receive mail for domain, in the order to try them (RFC 5321
// §5.1): MX records by preference, shuffled among equal preferences, or the domain itself when it
// has no MX (its A/AAAA records are the implicit MX).
func (q *Queue) mxHosts(ctx context.Context, domain string) ([]string, *outcome) {
	mxs, err := q.cfg.Resolver.LookupMX(ctx, domain)
	switch {
	case errors.Is(err, dns.ErrNullMX):
		return nil, &outcome{status: failed, code: "5.1.10", reason: fmt.Sprintf("domain %s accepts no mail (null MX, RFC 7505)", domain)}
	case errors.Is(err, dns.ErrNoRecords):
		return []string{domain}, nil
	case dns.IsNXDomain(err):
		return nil, &outcome{status: failed, code: "5.1.2", reason: fmt.Sprintf("domain %s does not exist", domain)}
	case err != nil:
		return nil, &outcome{status: deferred, code: "4.4.3", reason: fmt.Sprintf("MX lookup of %s: %v", domain, err)}
	case len(mxs) == 0:
		return []string{domain}, nil
	}
	sorted := make([]*net.MX, len(mxs))
	copy(sorted, mxs)
	// Stable order by preference, then shuffle each run of equal preference.
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j].Pref < sorted[j-1].Pref; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j].Pref == sorted[i].Pref {
			j++
		}
		run := sorted[i:j]
		rand.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		i = j
	}
	hosts := make([]string, 0, len(sorted))
	for _, mx := range sorted {
		hosts = append(hosts, strings.ToLower(strings.TrimSuffix(mx.Host, ".")))
	}
	return hosts, nil
}
