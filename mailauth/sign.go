package mailauth

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"mailstead/message"
)

// DKIM selectors mailstead publishes for every domain: one RSA and one
// Ed25519 key (RFC 8463 recommends signing with both while Ed25519
// support spreads). Their records live at <selector>._domainkey.<domain>.
const (
	SelectorRSA     = "ms-rsa"
	SelectorEd25519 = "ms-ed"
)

// SigningKey is a private key and the selector its public key is published
// under.
type SigningKey struct {
	Selector string
	Signer   crypto.Signer // *rsa.PrivateKey or ed25519.PrivateKey
}

// signedHeaders are the fields RFC 6376 section 5.4.1 recommends signing,
// plus the MIME fields that decide how the body is read.
var signedHeaders = []string{
	"From", "Sender", "Reply-To", "Subject", "Date", "To", "Cc",
	"Resent-Date", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc",
	"In-Reply-To", "References", "Message-ID",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post",
	"List-Owner", "List-Archive",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// overSigned fields are listed once more than they occur, present or not, so
// that adding one breaks the signature (RFC 6376 sections 5.4.2 and 8.15): a
// signed message must not gain a Reply-To, a Cc or a new Content-Type on its
// way and still verify. A field listed but absent signs as the empty string.
var overSigned = map[string]bool{
	"from": true, "to": true, "cc": true, "subject": true, "date": true, "reply-to": true,
	"message-id": true, "in-reply-to": true, "references": true, "content-type": true,
	"mime-version": true, "sender": true,
}

// Sign returns msg with one DKIM-Signature field per key on top, in key
// order, each with relaxed/relaxed canonicalization and SHA-256 (RFC 6376,
// RFC 8463 for Ed25519). msg must use CRLF line endings.
func Sign(msg []byte, domain string, keys ...SigningKey) ([]byte, error) {
	sigs, err := SignStream(bytes.NewReader(msg), message.HeaderBytes(msg), domain, keys...)
	if err != nil {
		return nil, err
	}
	return append(sigs, msg...), nil
}

// SignStream reads the message from msg once, signing it with every key as
// it goes, and returns the DKIM-Signature fields to put on top of it. header
// is the message's header section (it decides which fields are signed); the
// body is never held in memory, so a spooled message of any size can be
// signed.
func SignStream(msg io.Reader, header []byte, domain string, keys ...SigningKey) ([]byte, error) {
	if len(keys) == 0 {
		return nil, errors.New("dkim sign: no key")
	}
	headerKeys := headersToSign(header)
	signers := make([]*dkim.Signer, 0, len(keys))
	writers := make([]io.Writer, 0, len(keys))
	for _, k := range keys {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             headerKeys,
		})
		if err != nil {
			return nil, fmt.Errorf("dkim sign %s selector %s: %w", domain, k.Selector, err)
		}
		signers = append(signers, s)
		writers = append(writers, s)
	}
	closeAll := func() {
		for _, s := range signers {
			s.Close()
		}
	}
	if _, err := io.Copy(io.MultiWriter(writers...), msg); err != nil {
		closeAll()
		return nil, fmt.Errorf("dkim sign %s: %w", domain, err)
	}
	var out bytes.Buffer
	for i, s := range signers {
		if err := s.Close(); err != nil {
			closeAll()
			return nil, fmt.Errorf("dkim sign %s selector %s: %w", domain, keys[i].Selector, err)
		}
		out.WriteString(s.Signature())
	}
	return out.Bytes(), nil
}

// headersToSign lists each recommended field as often as it occurs in msg,
// plus once more for the over-signed ones, whether they occur or not.
func headersToSign(header []byte) []string {
	fields, _ := message.ParseHeader(header)
	count := map[string]int{}
	for _, f := range fields {
		count[strings.ToLower(f.Name)]++
	}
	var keys []string
	for _, h := range signedHeaders {
		n := count[strings.ToLower(h)]
		if overSigned[strings.ToLower(h)] {
			n++
		}
		for range n {
			keys = append(keys, h)
		}
	}
	return keys
}

// GenerateRSAKey makes a 2048-bit RSA DKIM key. It returns the private key
// as PKCS #8 PEM and the TXT record value to publish at
// ms-rsa._domainkey.<domain>.
func GenerateRSAKey() (privatePEM []byte, txt string, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", fmt.Errorf("dkim key: %w", err)
	}
	return encodeKey(k)
}

// GenerateEd25519Key makes an Ed25519 DKIM key (RFC 8463). It returns the
// private key as PKCS #8 PEM and the TXT record value to publish at
// ms-ed._domainkey.<domain>.
func GenerateEd25519Key() (privatePEM []byte, txt string, err error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("dkim key: %w", err)
	}
	return encodeKey(k)
}

func encodeKey(k crypto.Signer) ([]byte, string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, "", fmt.Errorf("dkim key: %w", err)
	}
	txt, err := DKIMRecord(k.Public())
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), txt, nil
}

// ParsePrivateKey reads a PEM private key (PKCS #8, or PKCS #1 for RSA) as
// written by GenerateRSAKey or GenerateEd25519Key.
func ParsePrivateKey(privatePEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(privatePEM)
	if block == nil {
		return nil, errors.New("dkim key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("dkim key: unsupported key type %T", key)
}

// DKIMRecord returns the TXT record value publishing pub (RFC 6376 section
// 3.6.1): "v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo>" or, for Ed25519
// (RFC 8463 section 4.2), "v=DKIM1; k=ed25519; p=<32 raw bytes>".
func DKIMRecord(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("dkim record: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k), nil
	}
	return "", fmt.Errorf("dkim record: unsupported key type %T", pub)
}

// DKIMRecordName is the DNS name of a selector's key record.
func DKIMRecordName(selector, domain string) string {
	return selector + "._domainkey." + strings.TrimSuffix(domain, ".")
}
