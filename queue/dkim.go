package queue

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"mailstead/store"
)

// DKIM keys live in the store's kv table under "dkim/<domain>/<selector>", PEM-encoded PKCS #8.
// Each domain gets two when it is created (RFC 6376 with RSA 2048, RFC 8463 with Ed25519) and
// every outgoing message carries a signature by each: receivers that do not know Ed25519 still
// find the RSA one.
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
	var pub []byte
	switch p := k.Signer.Public().(type) {
	case ed25519.PublicKey:
		pub = p // RFC 8463 §4.2: the raw 32-byte key
	default:
		pub, _ = x509.MarshalPKIXPublicKey(p)
	}
	return "v=DKIM1; k=" + k.Algorithm() + "; p=" + base64.StdEncoding.EncodeToString(pub)
}

// EnsureDKIMKeys gives domain its two signing keys unless it already has keys. The server calls
// it when a domain is created (and may call it at start-up for domains that predate it).
func EnsureDKIMKeys(ctx context.Context, st *store.Store, domain string) ([]DKIMKey, error) {
	domain, err := store.CanonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	keys, err := DKIMKeys(ctx, st, domain)
	if err != nil || len(keys) > 0 {
		return keys, err
	}
	stamp := time.Now().UTC().Format("20060102")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("dkim key for %s: %w", domain, err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dkim key for %s: %w", domain, err)
	}
	for _, k := range []DKIMKey{{domain, "r" + stamp, rsaKey}, {domain, "e" + stamp, edKey}} {
		der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
		if err != nil {
			return nil, err
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := st.PutKV(ctx, dkimPrefix(domain)+k.Selector, pemBytes); err != nil {
			return nil, fmt.Errorf("store dkim key for %s: %w", domain, err)
		}
	}
	return DKIMKeys(ctx, st, domain)
}

// DKIMKeys returns the signing keys of domain, RSA first.
func DKIMKeys(ctx context.Context, st *store.Store, domain string) ([]DKIMKey, error) {
	names, err := st.KVKeys(ctx, dkimPrefix(domain))
	if err != nil {
		return nil, fmt.Errorf("dkim keys of %s: %w", domain, err)
	}
	var keys []DKIMKey
	for _, name := range names {
		b, err := st.GetKV(ctx, name)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("dkim key %s: not PEM", name)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dkim key %s: %w", name, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("dkim key %s: %T cannot sign", name, k)
		}
		keys = append(keys, DKIMKey{Domain: domain, Selector: strings.TrimPrefix(name, dkimPrefix(domain)), Signer: signer})
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Algorithm() == "rsa" && keys[j].Algorithm() != "rsa" })
	return keys, nil
}

// signedHeaders are the fields RFC 6376 §5.4.1 recommends signing; those present are signed.
var signedHeaders = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Resent-Date", "Resent-From", "Resent-To",
	"Resent-Cc", "In-Reply-To", "References", "List-Id", "List-Help", "List-Unsubscribe",
	"List-Subscribe", "List-Post", "List-Owner", "List-Archive", "Message-ID", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding",
}

// SignDKIM signs msg (CRLF-normalised) with every key of domain, relaxed/relaxed, and returns the
// DKIM-Signature header lines to put in front of it. A domain without keys gives nil, nil.
func SignDKIM(ctx context.Context, st *store.Store, domain string, msg []byte) ([]byte, error) {
	keys, err := DKIMKeys(ctx, st, domain)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	present := map[string]bool{}
	for _, line := range strings.Split(string(headerOf(msg)), "\r\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && line[0] != ' ' && line[0] != '\t' {
			present[strings.ToLower(strings.TrimSpace(k))] = true
		}
	}
	if !present["from"] {
		return nil, errors.New("dkim: message has no From field")
	}
	var hk []string
	for _, h := range signedHeaders {
		if present[strings.ToLower(h)] {
			hk = append(hk, h)
		}
	}
	var out bytes.Buffer
	for _, k := range keys {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain: domain, Selector: k.Selector, Signer: k.Signer, Hash: crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             hk,
		})
		if err != nil {
			return nil, err
		}
		if _, err := s.Write(msg); err != nil {
			s.Close()
			return nil, err
		}
		if err := s.Close(); err != nil {
			return nil, fmt.Errorf("dkim sign with %s: %w", k.Selector, err)
		}
		out.WriteString(s.Signature())
	}
	return out.Bytes(), nil
}

// SignFrom signs msg for the domain of its From: address (the one DMARC aligns with), and returns
// the header lines to prepend; nil when that domain has no keys here.
func SignFrom(ctx context.Context, st *store.Store, msg []byte) ([]byte, error) {
	from := headerValue(msg, "From")
	addr := from
	if i := strings.LastIndexByte(from, '<'); i >= 0 {
		addr = from[i+1:]
		if j := strings.IndexByte(addr, '>'); j >= 0 {
			addr = addr[:j]
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return nil, nil
	}
	domain, err := store.CanonicalDomain(strings.TrimSpace(addr[at+1:]))
	if err != nil {
		return nil, nil
	}
	return SignDKIM(ctx, st, domain, msg)
}

// DNSRecords returns, as zone-file lines, the records that domain needs published for mail sent
// and received here: its MX pointing at hostname, SPF allowing the MX, and every DKIM key.
func DNSRecords(ctx context.Context, st *store.Store, domain, hostname string) ([]string, error) {
	domain, err := store.CanonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	keys, err := DKIMKeys(ctx, st, domain)
	if err != nil {
		return nil, err
	}
	fq := func(n string) string { return strings.TrimSuffix(n, ".") + "." }
	lines := []string{
		fmt.Sprintf("%s 3600 IN MX 10 %s", fq(domain), fq(hostname)),
		fmt.Sprintf("%s 3600 IN TXT %s", fq(domain), zoneTXT("v=spf1 mx -all")),
	}
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("%s._domainkey.%s 3600 IN TXT %s", k.Selector, fq(domain), zoneTXT(k.TXT())))
	}
	return lines, nil
}

// zoneTXT quotes a TXT value for a zone file, split into strings of at most 255 bytes (RFC 1035
// §3.3.14); receivers join them back (RFC 6376 §3.6.2.2).
func zoneTXT(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	return strings.Join(parts, " ")
}
