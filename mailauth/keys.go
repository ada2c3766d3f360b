package mailauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"golang.org/x/net/idna"

	"mailstead/message"
)

// DKIM keys live in the store's kv table under "dkim/<domain>/<selector>", PEM-encoded PKCS #8.
// Each domain gets two when it is created (the operations layer's domain-add stores NewKeys in
// the transaction that makes the domain): RSA 2048 under selector ms-rsa (RFC 6376) and Ed25519
// under ms-ed (RFC 8463). Every outgoing message carries a signature by each, so receivers that
// do not know Ed25519 still find the RSA one. Nothing here writes keys: reading a domain's
// records or signing for it never creates any.

// KeyStore is what key reading needs of the store; *store.Store satisfies it.
type KeyStore interface {
	KVKeys(ctx context.Context, prefix string) ([]string, error)
	GetKV(ctx context.Context, key string) ([]byte, error)
}

// KeyPrefix is the kv prefix of a domain's keys, removed with the domain.
func KeyPrefix(domain string) string { return "dkim/" + domain + "/" }

// DKIMKey is one signing key of a domain.
type DKIMKey struct {
	Domain   string
	Selector string
	Signer   crypto.Signer
}

// Algorithm is "rsa" or "ed25519" (the k= tag).
func (k DKIMKey) Algorithm() string {
	if _, ok := k.Signer.Public().(ed25519.PublicKey); ok {
		return "ed25519"
	}
	return "rsa"
}

// TXT is the value of the key's DNS record at SELECTOR._domainkey.DOMAIN (RFC 6376 §3.6.1).
func (k DKIMKey) TXT() string {
	txt, _ := DKIMRecord(k.Signer.Public())
	return txt
}

// NewKeys makes the two signing keys of a new domain as kv entries, storing nothing: the
// operations layer stores them in the transaction that creates the domain.
func NewKeys(domain string) (map[string][]byte, error) {
	kv := map[string][]byte{}
	for _, k := range []struct {
		selector string
		gen      func() ([]byte, string, error)
	}{{SelectorRSA, GenerateRSAKey}, {SelectorEd25519, GenerateEd25519Key}} {
		pemBytes, _, err := k.gen()
		if err != nil {
			return nil, fmt.Errorf("dkim key for %s: %w", domain, err)
		}
		kv[KeyPrefix(domain)+k.selector] = pemBytes
	}
	return kv, nil
}

// Keys returns the signing keys of domain (canonical, lower-case A-labels), RSA first; none when
// it has none.
func Keys(ctx context.Context, ks KeyStore, domain string) ([]DKIMKey, error) {
	return (&Signer{ks: ks}).Keys(ctx, domain)
}

// Signer signs outgoing mail with the keys in the store, keeping the parsed keys: parsing an RSA
// key (with its precomputation and consistency check) costs about a quarter of an RSA signature,
// and would otherwise be paid for every message. Keys are still read from the store each time
// and looked up by their PEM bytes, so a replaced key is used from the next message on.
type Signer struct {
	ks     KeyStore
	mu     sync.Mutex
	parsed map[string]crypto.Signer // PEM bytes → key; nil keeps nothing
}

// maxParsedKeys bounds the Signer's cache (two keys per domain).
const maxParsedKeys = 256

// NewSigner returns a signer reading keys from ks.
func NewSigner(ks KeyStore) *Signer {
	return &Signer{ks: ks, parsed: map[string]crypto.Signer{}}
}

// Keys returns the signing keys of domain, RSA first.
func (s *Signer) Keys(ctx context.Context, domain string) ([]DKIMKey, error) {
	names, err := s.ks.KVKeys(ctx, KeyPrefix(domain))
	if err != nil {
		return nil, fmt.Errorf("dkim keys of %s: %w", domain, err)
	}
	var keys []DKIMKey
	for _, name := range names {
		b, err := s.ks.GetKV(ctx, name)
		if err != nil {
			return nil, err
		}
		signer, err := s.parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		keys = append(keys, DKIMKey{Domain: domain, Selector: strings.TrimPrefix(name, KeyPrefix(domain)), Signer: signer})
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Algorithm() == "rsa" && keys[j].Algorithm() != "rsa" })
	return keys, nil
}

func (s *Signer) parse(pemBytes []byte) (crypto.Signer, error) {
	if s.parsed == nil {
		return ParsePrivateKey(pemBytes)
	}
	s.mu.Lock()
	k, ok := s.parsed[string(pemBytes)]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.parsed) >= maxParsedKeys {
		clear(s.parsed)
	}
	s.parsed[string(pemBytes)] = k
	return k, nil
}

// SignFrom signs msg for the domain of its From: address (the one DMARC aligns with), and returns
// the header lines to prepend; nil when that domain has no keys here or From does not parse.
func (s *Signer) SignFrom(ctx context.Context, msg []byte) ([]byte, error) {
	return s.SignStream(ctx, message.HeaderBytes(msg), bytes.NewReader(msg))
}

// SignStream is SignFrom for a message read once from msg (a spooled one need not fit in
// memory); header is its header section. The address comes from message's one parser, the same
// one submission checked ownership with, so the domain signed for is always the one the user
// was allowed to send as.
func (s *Signer) SignStream(ctx context.Context, header []byte, msg io.Reader) ([]byte, error) {
	hdr, _ := message.ParseHeader(header)
	froms, err := hdr.Addresses("From")
	if err != nil || len(froms) == 0 {
		return nil, nil
	}
	domain, err := idna.Lookup.ToASCII(message.Domain(froms[0]))
	if err != nil || domain == "" || !isDomainName(domain) {
		return nil, nil
	}
	domain = strings.ToLower(domain)
	// Reports come From MAILER-DAEMON@ the mail hostname (mail.b.test), which has no keys of
	// its own: the nearest parent domain with keys signs, and DMARC's relaxed alignment accepts
	// it (RFC 7489 §3.1.1). Every domain here has keys, so a user's own domain signs for itself.
	for d := domain; strings.Contains(d, "."); _, d, _ = strings.Cut(d, ".") {
		keys, err := s.Keys(ctx, d)
		if err != nil {
			return nil, err
		}
		if len(keys) > 0 {
			sks := make([]SigningKey, len(keys))
			for i, k := range keys {
				sks[i] = SigningKey{Selector: k.Selector, Signer: k.Signer}
			}
			return SignStream(msg, header, d, sks...) // the keys just read, not read again
		}
	}
	return nil, nil
}
