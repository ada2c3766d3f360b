package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/acme"
)

// certPair holds the two certificates of one name: ECDSA for every client
// that supports it, RSA for old clients that do not. Either may be nil.
type certPair struct {
	ecdsa, rsa *tls.Certificate
}

// pick returns the certificate of the pair the client can use, preferring
// ECDSA; nil if the pair has none it can use. The name is not compared: the
// caller chose the pair by name, and a client asking for a name we hold no
// certificate for gets the hostname's.
func (p certPair) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	h := *hello
	h.ServerName = "" // SupportsCertificate would check the name too
	hello = &h
	if p.ecdsa != nil && hello.SupportsCertificate(p.ecdsa) == nil {
		return p.ecdsa
	}
	if p.rsa != nil && hello.SupportsCertificate(p.rsa) == nil {
		return p.rsa
	}
	return nil
}

// certSet is an immutable snapshot of the ACME certificates by name. A new
// certificate replaces the whole snapshot, so handshakes never lock and open
// connections keep the certificate they were started with.
type certSet struct {
	byName map[string]certPair
}

// TLSConfig returns the configuration for every TLS listener: SMTP
// (STARTTLS and 465), IMAP (STARTTLS and 993), POP3 (STLS and 995) and HTTPS.
// The certificate is chosen per handshake, so a renewed or newly issued one
// is served from the next handshake on, without a restart.
//
// Every call returns a clone of its own, which the caller may change (go-smtp, http.Server
// and others set fields on the config they are given, which raced when all shared one). The
// clone keeps the certificate callbacks, so every listener serves the current certificate.
// All clones share one set of session ticket keys (tickets.go), so a STARTTLS peer that comes
// back resumes its session on any listener; tickets stay enabled because Microsoft's MTAs and
// others rely on them.
// TLS 1.2 is the minimum. No ALPN protocols are set: http.Server.ServeTLS
// adds "h2" and "http/1.1" to its clone, mail listeners need none, and
// TLS-ALPN-01 challenge handshakes ("acme-tls/1") are answered through
// GetConfigForClient on whichever listener receives them (port 443).
func (m *Manager) TLSConfig() *tls.Config {
	c := m.tlsConf.Clone()
	m.tickets.share(c, m.now())
	return c
}

// configForClient runs before each handshake: it rotates the shared ticket keys when due and
// answers ACME's TLS-ALPN-01 challenges.
func (m *Manager) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	m.tickets.rotate(m.now())
	return m.challengeConfig(hello)
}

// challengeConfig answers a CA's TLS-ALPN-01 validation (RFC 8737 section 3):
// a hello offering only "acme-tls/1" gets the challenge certificate and that
// protocol. Every other hello continues with the listener's own config.
func (m *Manager) challengeConfig(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != acme.ALPNProto {
		return nil, nil
	}
	cert, err := m.setup().solver.GetCertificate(hello)
	if err != nil {
		return nil, fmt.Errorf("acme: tls-alpn-01 for %q: %w", hello.ServerName, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{acme.ALPNProto},
	}, nil
}

// getCertificate is the tls.Config.GetCertificate callback. It never orders
// a certificate and never touches the database: it reads the current
// snapshot (or the manual files' cache) only.
//
// Clients that send no SNI (many MTAs) or a name we hold no certificate for
// get the mail hostname's certificate; until that exists, the self-signed one.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := m.setup()
	if s.manual != nil {
		if c, _ := s.manual.get(); c != nil {
			return c, nil
		}
		return s.fallback(hello)
	}
	set := s.live.Load()
	name := normalizeName(hello.ServerName)
	pair, ok := set.byName[name]
	if !ok && s.acme && name != "" && name != s.hostname {
		m.nudge(name)
	}
	if c := pair.pick(hello); c != nil {
		return c, nil
	}
	if c := set.byName[s.hostname].pick(hello); c != nil {
		return c, nil
	}
	return s.fallback(hello)
}

// nudge wakes the loop, at most once a minute, when a client asks for an
// allowed name that has no certificate yet (its DNS may just have appeared).
func (m *Manager) nudge(name string) {
	now := m.now().Unix()
	last := m.nudgeAt.Load()
	if now-last < 60 || !m.isAllowed(name) || !m.nudgeAt.CompareAndSwap(last, now) {
		return
	}
	m.poke()
}

func (s *setup) fallback(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.selfSigned.pick(hello); c != nil {
		return c, nil
	}
	// The client supports neither key type; let crypto/tls report it.
	if s.selfSigned.rsa != nil {
		return s.selfSigned.rsa, nil
	}
	return nil, errors.New("acme: no certificate")
}

// isAllowed reports whether name may hold a certificate: the hostname or one
// of the extra hosts seen by the last check.
func (m *Manager) isAllowed(name string) bool {
	if name == m.setup().hostname {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.hosts[name]
	return ok
}

// challengePolicy is the solver's host policy: challenges are answered only
// for allowed names. The HTTP-01 request's Host may carry a port.
func (m *Manager) challengePolicy(_ context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !m.isAllowed(normalizeName(host)) {
		return fmt.Errorf("acme: host %q not allowed", host)
	}
	return nil
}

// cacheKeyName splits an autocert cache key of a certificate ("name" for
// ECDSA, "name+rsa" for RSA). ok is false for other keys (account key,
// challenge tokens).
func cacheKeyName(key string) (name string, isRSA bool, ok bool) {
	name, isRSA = strings.CutSuffix(key, "+rsa")
	if strings.Contains(name, "+") || !strings.Contains(name, ".") {
		return "", false, false
	}
	return name, isRSA, true
}

// parseCachedCert parses autocert's cache format (private key PEM, then the
// chain PEM) and checks it with checkCert.
func (m *Manager) parseCachedCert(key string, data []byte) (*tls.Certificate, error) {
	name, isRSA, ok := cacheKeyName(key)
	if !ok {
		return nil, fmt.Errorf("acme: %q is not a certificate key", key)
	}
	// X509KeyPair skips blocks of the other kind, so the one blob serves both.
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("acme: cached certificate %s: %w", key, err)
	}
	if err := m.checkCert(name, isRSA, &cert); err != nil {
		return nil, err
	}
	return &cert, nil
}

// checkCert checks that cert is for name, has the expected key type and is
// within its validity period at the Manager's now. It fills cert.Leaf.
func (m *Manager) checkCert(name string, isRSA bool, cert *tls.Certificate) error {
	if cert.Leaf == nil {
		if len(cert.Certificate) == 0 {
			return fmt.Errorf("acme: certificate for %s: empty chain", name)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("acme: certificate for %s: %w", name, err)
		}
		cert.Leaf = leaf
	}
	leaf := cert.Leaf
	if err := leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("acme: certificate for %s: %w", name, err)
	}
	now := m.now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("acme: certificate for %s is outside its validity (%s to %s)", name, leaf.NotBefore, leaf.NotAfter)
	}
	switch cert.PrivateKey.(type) {
	case *rsa.PrivateKey:
		if !isRSA {
			return fmt.Errorf("acme: certificate for %s: RSA key where ECDSA was expected", name)
		}
	case *ecdsa.PrivateKey:
		if isRSA {
			return fmt.Errorf("acme: certificate for %s: ECDSA key where RSA was expected", name)
		}
	default:
		return fmt.Errorf("acme: certificate for %s: unsupported key type %T", name, cert.PrivateKey)
	}
	return nil
}

// installPEM is called for every certificate autocert writes to the cache:
// the new certificate is served from the next handshake on.
func (m *Manager) installPEM(s *setup, key string, data []byte) {
	cert, err := m.parseCachedCert(key, data)
	if err != nil {
		m.log.Error("new certificate not installed", "key", key, "err", err)
		return
	}
	name, isRSA, _ := cacheKeyName(key)
	m.install(s, name, isRSA, cert)
}

// install swaps cert into the live snapshot.
func (m *Manager) install(s *setup, name string, isRSA bool, cert *tls.Certificate) {
	m.mu.Lock()
	old := s.live.Load()
	next := &certSet{byName: make(map[string]certPair, len(old.byName)+1)}
	for k, v := range old.byName {
		next.byName[k] = v
	}
	pair := next.byName[name]
	prev := pair.ecdsa
	if isRSA {
		prev, pair.rsa = pair.rsa, cert
	} else {
		pair.ecdsa = cert
	}
	next.byName[name] = pair
	s.live.Store(next)
	m.mu.Unlock()

	if prev != nil && prev.Leaf != nil && prev.Leaf.SerialNumber.Cmp(cert.Leaf.SerialNumber) == 0 {
		return
	}
	m.log.Info("certificate installed", "name", name, "key", keyType(isRSA),
		"issuer", cert.Leaf.Issuer.String(), "not_after", cert.Leaf.NotAfter)
}

// loadCached puts certificates already in the store into the live snapshot.
func (m *Manager) loadCached(ctx context.Context, s *setup, names []string) {
	set := s.live.Load()
	for _, name := range names {
		for _, isRSA := range s.keyTypes(name) {
			pair := set.byName[name]
			if (isRSA && pair.rsa != nil) || (!isRSA && pair.ecdsa != nil) {
				continue
			}
			key := cacheKey(name, isRSA)
			data, err := m.kv.GetKV(ctx, s.cache.prefix+key)
			if err != nil {
				if !errNotExist(err) {
					m.log.Error("reading cached certificate", "key", key, "err", err)
				}
				continue
			}
			cert, err := m.parseCachedCert(key, data)
			if err != nil {
				m.log.Warn("cached certificate not usable", "key", key, "err", err)
				continue
			}
			m.install(s, name, isRSA, cert)
		}
	}
}

func cacheKey(name string, isRSA bool) string {
	if isRSA {
		return name + "+rsa"
	}
	return name
}

func keyType(isRSA bool) string {
	if isRSA {
		return "RSA"
	}
	return "ECDSA"
}
