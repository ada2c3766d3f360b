package queue

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

	"mailstead/mailauth"
	"mailstead/message"
	"mailstead/store"
)

// DKIM keys live in the store's kv table under "dkim/<domain>/<selector>", PEM-encoded PKCS #8.
// Each domain gets two when it is created: RSA 2048 under selector ms-rsa (RFC 6376) and Ed25519
// under ms-ed (RFC 8463). Every outgoing message carries a signature by each, so receivers that
// do not know Ed25519 still find the RSA one. Key making and signing are mailauth's.
func dkimPrefix(domain string) string { return "dkim/" + domain + "/" }

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
	txt, _ := mailauth.DKIMRecord(k.Signer.Public())
	return txt
}

// EnsureDKIMKeys gives domain its two signing keys unless it already has keys (a domain made
// before keys were made with it).
func EnsureDKIMKeys(ctx context.Context, st *store.Store, domain string) ([]DKIMKey, error) {
	domain, err := store.CanonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	keys, err := DKIMKeys(ctx, st, domain)
	if err != nil || len(keys) > 0 {
		return keys, err
	}
	kv, err := NewDKIMKeys(domain)
	if err != nil {
		return nil, err
	}
	for k, v := range kv {
		if err := st.PutKV(ctx, k, v); err != nil {
			return nil, fmt.Errorf("store dkim key for %s: %w", domain, err)
		}
	}
	return DKIMKeys(ctx, st, domain)
}

// NewDKIMKeys makes the two signing keys of a new domain as kv entries, storing nothing: the
// operations layer stores them in the transaction that creates the domain.
func NewDKIMKeys(domain string) (map[string][]byte, error) {
	kv := map[string][]byte{}
	for _, k := range []struct {
		selector string
		gen      func() ([]byte, string, error)
	}{{mailauth.SelectorRSA, mailauth.GenerateRSAKey}, {mailauth.SelectorEd25519, mailauth.GenerateEd25519Key}} {
		pemBytes, _, err := k.gen()
		if err != nil {
			return nil, fmt.Errorf("dkim key for %s: %w", domain, err)
		}
		kv[dkimPrefix(domain)+k.selector] = pemBytes
	}
	return kv, nil
}

// DKIMKeyPrefix is the kv prefix of a domain's keys, removed with the domain.
func DKIMKeyPrefix(domain string) string { return dkimPrefix(domain) }

// DKIMKeys returns the signing keys of domain, RSA first.
func DKIMKeys(ctx context.Context, st *store.Store, domain string) ([]DKIMKey, error) {
	return (&Signer{st: st}).Keys(ctx, domain)
}

// Signer signs outgoing mail with the keys in the store, keeping the parsed keys: parsing an RSA
// key (with its precomputation and consistency check) costs about a quarter of an RSA signature,
// and would otherwise be paid for every message. Keys are still read from the store each time
// and looked up by their PEM bytes, so a replaced key is used from the next message on.
type Signer struct {
	st     *store.Store
	mu     sync.Mutex
	parsed map[string]crypto.Signer // PEM bytes → key; nil keeps nothing
}

// maxParsedKeys bounds the Signer's cache (two keys per domain).
const maxParsedKeys = 256

// NewSigner returns a signer reading keys from st.
func NewSigner(st *store.Store) *Signer {
	return &Signer{st: st, parsed: map[string]crypto.Signer{}}
}

// Keys returns the signing keys of domain, RSA first.
func (s *Signer) Keys(ctx context.Context, domain string) ([]DKIMKey, error) {
	names, err := s.st.KVKeys(ctx, dkimPrefix(domain))
	if err != nil {
		return nil, fmt.Errorf("dkim keys of %s: %w", domain, err)
	}
	var keys []DKIMKey
	for _, name := range names {
		b, err := s.st.GetKV(ctx, name)
		if err != nil {
			return nil, err
		}
		signer, err := s.parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		keys = append(keys, DKIMKey{Domain: domain, Selector: strings.TrimPrefix(name, dkimPrefix(domain)), Signer: signer})
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Algorithm() == "rsa" && keys[j].Algorithm() != "rsa" })
	return keys, nil
}

func (s *Signer) parse(pemBytes []byte) (crypto.Signer, error) {
	if s.parsed == nil {
		return mailauth.ParsePrivateKey(pemBytes)
	}
	s.mu.Lock()
	k, ok := s.parsed[string(pemBytes)]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := mailauth.ParsePrivateKey(pemBytes)
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

// SignDKIM signs msg (CRLF-normalised) with every key of domain (mailauth.Sign: relaxed/relaxed,
// the RFC 6376 §5.4.1 fields) and returns the DKIM-Signature header lines to put in front of it.
// A domain without keys gives nil, nil.
func SignDKIM(ctx context.Context, st *store.Store, domain string, msg []byte) ([]byte, error) {
	return signStream(ctx, st, domain, message.HeaderBytes(msg), bytes.NewReader(msg))
}

func signStream(ctx context.Context, st *store.Store, domain string, header []byte, msg io.Reader) ([]byte, error) {
	keys, err := DKIMKeys(ctx, st, domain)
	if err != nil {
		return nil, err
	}
	return signWith(keys, domain, header, msg)
}

// signWith signs msg with keys (none: no signature).
func signWith(keys []DKIMKey, domain string, header []byte, msg io.Reader) ([]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	sks := make([]mailauth.SigningKey, len(keys))
	for i, k := range keys {
		sks[i] = mailauth.SigningKey{Selector: k.Selector, Signer: k.Signer}
	}
	return mailauth.SignStream(msg, header, domain, sks...)
}

// SignFrom signs msg for the domain of its From: address (the one DMARC aligns with), and returns
// the header lines to prepend; nil when that domain has no keys here or From does not parse. The
// address comes from message's one parser, the same one submission checked ownership with, so
// the domain signed for is always the one the user was allowed to send as.
func SignFrom(ctx context.Context, st *store.Store, msg []byte) ([]byte, error) {
	return (&Signer{st: st}).SignFrom(ctx, msg)
}

// SignStream is SignFrom for a message read once from msg (a spooled one need not fit in
// memory); header is its header section.
func SignStream(ctx context.Context, st *store.Store, header []byte, msg io.Reader) ([]byte, error) {
	return (&Signer{st: st}).SignStream(ctx, header, msg)
}

// SignFrom is the package's SignFrom with the signer's parsed keys.
func (s *Signer) SignFrom(ctx context.Context, msg []byte) ([]byte, error) {
	return s.SignStream(ctx, message.HeaderBytes(msg), bytes.NewReader(msg))
}

// SignStream is the package's SignStream with the signer's parsed keys.
func (s *Signer) SignStream(ctx context.Context, header []byte, msg io.Reader) ([]byte, error) {
	hdr, _ := message.ParseHeader(header)
	froms, err := hdr.Addresses("From")
	if err != nil || len(froms) == 0 {
		return nil, nil
	}
	domain, err := store.CanonicalDomain(message.Domain(froms[0]))
	if err != nil {
		return nil, nil
	}
	// Reports come From MAILER-DAEMON@ the mail hostname (mail.b.test), which has no keys of
	// its own: the nearest parent domain with keys signs, and DMARC's relaxed alignment accepts
	// it (RFC 7489 §3.1.1). Every domain here has keys, so a user's own domain signs for itself.
	for d := domain; strings.Contains(d, "."); _, d, _ = strings.Cut(d, ".") {
		keys, err := s.Keys(ctx, d)
		if err != nil {
			return nil, err
		}
		if len(keys) > 0 {
			return signWith(keys, d, header, msg) // the keys just read, not read again
		}
	}
	return nil, nil
}
