package acme

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status describes what the server presents, for `mailstead` on the CLI and
// the admin page. The top-level fields describe the mail hostname's
// certificate; Hosts has one entry per name that may hold a certificate.
type Status struct {
	Hostname  string
	Source    Source // what the hostname is served with right now
	Issuer    string
	Names     []string // DNS names of the served certificate
	NotBefore time.Time
	NotAfter  time.Time
	Directory string // ACME directory; empty in manual and ACME-disabled modes
	// LastError is the most recent failure for the hostname (order,
	// renewal, manual file load); empty once a later attempt succeeded.
	LastError   string
	LastErrorAt time.Time
	Hosts       []HostStatus
}

// HostStatus is the state of one name.
type HostStatus struct {
	Name        string
	Source      Source
	Issuer      string
	KeyTypes    []string // "ECDSA", "RSA": the certificates held
	NotAfter    time.Time
	State       string // "valid", "waiting for DNS", "ordering", "order failed", ...
	Detail      string // why it waits
	LastError   string
	LastErrorAt time.Time
	NextAttempt time.Time // zero when nothing is scheduled
}

// Status returns the current certificate state.
func (m *Manager) Status() Status {
	s := m.setup()
	st := Status{Hostname: s.hostname}
	if s.manual != nil {
		cert, at, err := s.manual.state()
		hs := HostStatus{Name: s.hostname, Source: SourceSelfSigned, State: "manual certificate not loaded"}
		if cert != nil {
			hs.Source, hs.State = SourceManual, "valid"
			fillLeaf(&hs, cert)
		}
		if err != nil {
			hs.LastError, hs.LastErrorAt = err.Error(), at
		}
		st.Hosts = []HostStatus{hs}
		s.fillTop(&st, cert, hs)
		return st
	}
	if s.acme {
		st.Directory = s.directory
	}
	set := s.live.Load()
	m.mu.Lock()
	names := []string{s.hostname}
	for h := range m.hosts {
		if h != s.hostname {
			names = append(names, h)
		}
	}
	slices.Sort(names[1:]) // the hostname stays first
	for _, name := range names {
		hs := HostStatus{Name: name, Source: SourceSelfSigned, State: "not checked yet"}
		if !s.acme {
			hs.State = "ACME disabled"
			if normalizeName(s.cfg.Hostname) == "" {
				hs.State = "hostname not set up"
			}
		}
		pair := set.byName[name]
		for _, c := range []*tls.Certificate{pair.ecdsa, pair.rsa} {
			if c != nil {
				hs.Source = SourceACME
				fillLeaf(&hs, c)
			}
		}
		if h := m.hosts[name]; h != nil && s.acme {
			hs.State, hs.Detail, hs.NextAttempt = h.state, h.detail, h.next
			if h.lastErr != nil {
				hs.LastError, hs.LastErrorAt = h.lastErr.Error(), h.lastErrAt
			}
		}
		st.Hosts = append(st.Hosts, hs)
	}
	m.mu.Unlock()
	s.fillTop(&st, pair0(set.byName[s.hostname]), st.Hosts[0])
	return st
}

func pair0(p certPair) *tls.Certificate {
	if p.ecdsa != nil {
		return p.ecdsa
	}
	return p.rsa
}

func (su *setup) fillTop(s *Status, served *tls.Certificate, hs HostStatus) {
	if served == nil {
		served = su.selfSigned.ecdsa
	}
	s.Source = hs.Source
	s.Issuer = served.Leaf.Issuer.String()
	s.Names = served.Leaf.DNSNames
	s.NotBefore, s.NotAfter = served.Leaf.NotBefore, served.Leaf.NotAfter
	s.LastError, s.LastErrorAt = hs.LastError, hs.LastErrorAt
}

func fillLeaf(hs *HostStatus, c *tls.Certificate) {
	hs.Issuer = c.Leaf.Issuer.String()
	if _, ok := c.PrivateKey.(*rsa.PrivateKey); ok {
		hs.KeyTypes = append(hs.KeyTypes, "RSA")
	} else {
		hs.KeyTypes = append(hs.KeyTypes, "ECDSA")
	}
	if hs.NotAfter.IsZero() || c.Leaf.NotAfter.Before(hs.NotAfter) {
		hs.NotAfter = c.Leaf.NotAfter
	}
}

// String renders the status for the CLI, one line per fact.
func (s Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname:   %s\n", s.Hostname)
	fmt.Fprintf(&b, "source:     %s\n", s.Source)
	fmt.Fprintf(&b, "issuer:     %s\n", s.Issuer)
	fmt.Fprintf(&b, "names:      %s\n", strings.Join(s.Names, ", "))
	fmt.Fprintf(&b, "expires:    %s (%d days)\n", s.NotAfter.UTC().Format(time.RFC3339), int(time.Until(s.NotAfter).Hours()/24))
	if s.Directory != "" {
		fmt.Fprintf(&b, "directory:  %s\n", s.Directory)
	}
	if s.LastError != "" {
		fmt.Fprintf(&b, "last error: %s (%s)\n", s.LastError, s.LastErrorAt.UTC().Format(time.RFC3339))
	}
	for _, h := range s.Hosts {
		fmt.Fprintf(&b, "  %s: %s, %s", h.Name, h.State, h.Source)
		if len(h.KeyTypes) > 0 {
			fmt.Fprintf(&b, " %s until %s", strings.Join(h.KeyTypes, "+"), h.NotAfter.UTC().Format(time.DateOnly))
		}
		if h.Detail != "" {
			fmt.Fprintf(&b, "; %s", h.Detail)
		}
		if h.LastError != "" {
			fmt.Fprintf(&b, "; last error: %s", h.LastError)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ReadStatus reports the stored certificates while the server is not
// running (the CLI then opens the database itself). It never writes to kv,
// never orders and never resolves names.
func ReadStatus(ctx context.Context, cfg Config, kv KV) (Status, error) {
	m, err := New(ctx, cfg, readOnlyKV{kv}, nil, nil)
	if err != nil {
		return Status{}, err
	}
	s := m.setup()
	if s.acme {
		m.loadCached(ctx, s, m.allowedHosts(ctx, s))
	}
	st := m.Status()
	for i, h := range st.Hosts {
		if h.State == "not checked yet" {
			st.Hosts[i].State = "stored"
			if h.Source == SourceSelfSigned {
				st.Hosts[i].State = "no certificate stored"
			}
		}
	}
	return st, nil
}

// readOnlyKV drops writes: a self-signed pair made for ReadStatus is not kept.
type readOnlyKV struct{ KV }

func (readOnlyKV) PutKV(context.Context, string, []byte) error { return nil }
func (readOnlyKV) DeleteKV(context.Context, string) error      { return nil }
