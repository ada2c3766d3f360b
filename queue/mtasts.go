package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mailstead/dns"
)

// stsPolicy is a domain's MTA-STS policy (RFC 8461 §3.2) as cached in the store.
type stsPolicy struct {
	ID      string   `json:"id"` // from the _mta-sts TXT record
	Mode    string   `json:"mode"`
	MX      []string `json:"mx"`
	MaxAge  int64    `json:"max_age"`
	Fetched int64    `json:"fetched"` // unix seconds
}

func (p *stsPolicy) expired(now time.Time) bool {
	return now.Unix() >= p.Fetched+p.MaxAge
}

// matches reports whether MX host h is allowed by the policy: exact names, or "*.example.com"
// standing for exactly one more leftmost label (RFC 8461 §4.1).
func (p *stsPolicy) matches(h string) bool {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	for _, m := range p.MX {
		m = strings.ToLower(m)
		if rest, ok := strings.CutPrefix(m, "*."); ok {
			if i := strings.IndexByte(h, '.'); i > 0 && h[i+1:] == rest {
				return true
			}
			continue
		}
		if h == m {
			return true
		}
	}
	return false
}

func stsKey(domain string) string { return "mtasts/" + domain }

// stsPolicy returns the MTA-STS policy of domain, or nil when it has none. It follows RFC 8461
// §5.1: the TXT record says which policy id is current; a cached policy with that id and within
// its max_age is used as is; otherwise the policy is fetched over HTTPS and cached; when the
// record or the fetch fails, a cached unexpired policy still applies.
func (q *Queue) stsPolicy(ctx context.Context, domain string) (*stsPolicy, error) {
	now := q.cfg.Now()
	var cached *stsPolicy
	if b, err := q.st.GetKV(ctx, stsKey(domain)); err == nil {
		var p stsPolicy
		if json.Unmarshal(b, &p) == nil && !p.expired(now) {
			cached = &p
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	id, err := q.stsRecordID(ctx, domain)
	if err != nil {
		return cached, err
	}
	if id == "" {
		return cached, nil
	}
	if cached != nil && cached.ID == id {
		return cached, nil
	}
	p, err := q.fetchSTSPolicy(ctx, domain)
	if err != nil {
		return cached, fmt.Errorf("MTA-STS policy of %s: %w", domain, err)
	}
	p.ID, p.Fetched = id, now.Unix()
	if b, err := json.Marshal(p); err == nil {
		if err := q.st.PutKV(ctx, stsKey(domain), b); err != nil {
			q.log.Warn("queue: caching MTA-STS policy", "domain", domain, "err", err)
		}
	}
	return p, nil
}

// stsRecordID reads the id of _mta-sts.DOMAIN's "v=STSv1" TXT record (RFC 8461 §3.1); "" when the
// domain has none.
func (q *Queue) stsRecordID(ctx context.Context, domain string) (string, error) {
	txts, err := q.cfg.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if errors.Is(err, dns.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var id string
	n := 0
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1") {
			continue
		}
		n++
		for _, f := range strings.Split(t, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			if k == "id" {
				id = strings.TrimSpace(v)
			}
		}
	}
	if n != 1 {
		return "", nil // none, or several: RFC 8461 §3.1 says treat as no policy
	}
	return id, nil
}

// maxPolicySize bounds the policy body we read.
const maxPolicySize = 64 << 10

func (q *Queue) fetchSTSPolicy(ctx context.Context, domain string) (*stsPolicy, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := q.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return parseSTSPolicy(string(body))
}

// parseSTSPolicy parses a policy body (RFC 8461 §3.2): key: value lines, CRLF or LF.
func parseSTSPolicy(body string) (*stsPolicy, error) {
	p := &stsPolicy{}
	version := ""
	for _, line := range strings.Split(body, "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "version":
			version = v
		case "mode":
			p.Mode = v
		case "mx":
			p.MX = append(p.MX, v)
		case "max_age":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bad max_age %q", v)
			}
			p.MaxAge = min(n, 31557600)
		}
	}
	if version != "STSv1" {
		return nil, fmt.Errorf("policy version %q, want STSv1", version)
	}
	switch p.Mode {
	case "enforce", "testing", "none":
	default:
		return nil, fmt.Errorf("bad policy mode %q", p.Mode)
	}
	if p.Mode != "none" && len(p.MX) == 0 {
		return nil, errors.New("policy lists no mx")
	}
	return p, nil
}

// newSTSClient fetches policies with a certificate check against RootCAs, resolving names
// through the queue's resolver (never the system's), and never following redirects (RFC 8461
// §3.3). The port is 443 plus the port offset.
func (q *Queue) newSTSClient() *http.Client {
	port := 443 + q.cfg.PortOffset
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: q.cfg.RootCAs, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := q.cfg.Resolver.LookupIP(ctx, host)
			if err != nil {
				return nil, err
			}
			d := net.Dialer{Timeout: 30 * time.Second}
			var lastErr error
			for _, ip := range ips {
				c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
				if err == nil {
					return c, nil
				}
				lastErr = err
			}
			return nil, lastErr
		},
		Proxy:               nil,
		TLSHandshakeTimeout: 15 * time.Second,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("MTA-STS policy fetch does not follow redirects")
		},
	}
}

// verifyChain checks that the peer's certificate chains to roots (nil: the system's) and is valid
// for name.
func verifyChain(cs tls.ConnectionState, name string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	return err
}
