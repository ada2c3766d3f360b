package acme

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// selfSignedKey is where the fallback certificates live in the kv table:
// generated once, so clients that pinned it on first use see the same one
// after a restart.
const selfSignedKey = "tls/self-signed"

const (
	selfSignedLifetime = 10 * 365 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour // regenerate when closer than this to expiry
)

// loadOrCreateSelfSigned returns the stored self-signed pair if it is valid
// for hostname, else generates (ECDSA P-256 and RSA 2048) and stores a new one.
func loadOrCreateSelfSigned(ctx context.Context, kv KV, hostname string, now time.Time) (certPair, error) {
	data, err := kv.GetKV(ctx, selfSignedKey)
	switch {
	case err == nil:
		pair, perr := parseSelfSigned(data, hostname, now)
		if perr == nil {
			return pair, nil
		}
		// Hostname changed or the pair is about to expire: make a new one.
	case !errNotExist(err):
		return certPair{}, fmt.Errorf("acme: reading self-signed certificate: %w", err)
	}

	var buf bytes.Buffer
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certPair{}, fmt.Errorf("acme: self-signed ECDSA key: %w", err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return certPair{}, fmt.Errorf("acme: self-signed RSA key: %w", err)
	}
	for _, key := range []crypto.Signer{ecKey, rsaKey} {
		if err := writeSelfSigned(&buf, key, hostname, now); err != nil {
			return certPair{}, err
		}
	}
	pair, err := parseSelfSigned(buf.Bytes(), hostname, now)
	if err != nil {
		return certPair{}, err
	}
	if err := kv.PutKV(ctx, selfSignedKey, buf.Bytes()); err != nil {
		return certPair{}, fmt.Errorf("acme: storing self-signed certificate: %w", err)
	}
	return pair, nil
}

// writeSelfSigned appends a private key and its self-signed certificate for
// hostname to buf as PEM.
func writeSelfSigned(buf *bytes.Buffer, key crypto.Signer, hostname string, now time.Time) error {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return fmt.Errorf("acme: self-signed serial: %w", err)
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		usage |= x509.KeyUsageKeyEncipherment // TLS 1.2 RSA key exchange
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hostname, Organization: []string{"mailstead self-signed"}},
		DNSNames:              []string{hostname},
		IPAddresses:           ipOf(hostname),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("acme: self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("acme: self-signed key: %w", err)
	}
	if err := pem.Encode(buf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}); err != nil {
		return err
	}
	return pem.Encode(buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// parseSelfSigned reads the stored PEM sequence (key, certificate, key,
// certificate) and checks both certificates are for hostname and not close
// to expiry.
func parseSelfSigned(data []byte, hostname string, now time.Time) (certPair, error) {
	var pair certPair
	rest := data
	for {
		var keyBlock, certBlock *pem.Block
		keyBlock, rest = pem.Decode(rest)
		if keyBlock == nil {
			break
		}
		certBlock, rest = pem.Decode(rest)
		if certBlock == nil {
			return certPair{}, fmt.Errorf("acme: self-signed: key without certificate")
		}
		cert, err := tls.X509KeyPair(pem.EncodeToMemory(certBlock), pem.EncodeToMemory(keyBlock))
		if err != nil {
			return certPair{}, fmt.Errorf("acme: self-signed: %w", err)
		}
		if err := cert.Leaf.VerifyHostname(hostname); err != nil {
			return certPair{}, fmt.Errorf("acme: self-signed: %w", err)
		}
		if now.Add(selfSignedRenew).After(cert.Leaf.NotAfter) {
			return certPair{}, fmt.Errorf("acme: self-signed: expires %s", cert.Leaf.NotAfter)
		}
		switch cert.PrivateKey.(type) {
		case *ecdsa.PrivateKey:
			pair.ecdsa = &cert
		case *rsa.PrivateKey:
			pair.rsa = &cert
		}
	}
	if pair.ecdsa == nil || pair.rsa == nil {
		return certPair{}, fmt.Errorf("acme: self-signed: incomplete pair")
	}
	return pair, nil
}

// ipOf returns the address when hostname is an IP literal (--bind with no
// name), so clients that connect by address can verify a pinned certificate.
func ipOf(hostname string) []net.IP {
	if ip := net.ParseIP(hostname); ip != nil {
		return []net.IP{ip}
	}
	return nil
}
