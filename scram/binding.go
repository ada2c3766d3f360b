package scram

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Channel binding types (RFC 9266, RFC 5929 §4).
const (
	TLSExporter       = "tls-exporter"
	TLSServerEndPoint = "tls-server-end-point"
)

// TLSBinding returns the channel bindings of the server side of a TLS connection. tls-exporter
// is the 32-byte exporter of RFC 9266 §2, offered on TLS 1.3 only (§3: TLS 1.2 without the
// extended master secret gives no safe binding). tls-server-end-point is the hash of the
// certificate the server presented (RFC 5929 §4.1); cert nil leaves it out.
func TLSBinding(cs tls.ConnectionState, cert *x509.Certificate) Binding {
	return func(cbType string) ([]byte, error) {
		switch cbType {
		case TLSExporter:
			if cs.Version != tls.VersionTLS13 {
				return nil, errors.New("tls-exporter needs TLS 1.3")
			}
			return cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		case TLSServerEndPoint:
			if cert == nil {
				return nil, errors.New("no server certificate")
			}
			return endPointHash(cert), nil
		}
		return nil, fmt.Errorf("channel binding type %q not supported", cbType)
	}
}

// endPointHash hashes the certificate with its signature's hash function, SHA-256 in place of
// MD5 and SHA-1 (RFC 5929 §4.1) and for signatures without their own (Ed25519).
func endPointHash(cert *x509.Certificate) []byte {
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		h := sha512.Sum384(cert.Raw)
		return h[:]
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		h := sha512.Sum512(cert.Raw)
		return h[:]
	}
	h := sha256.Sum256(cert.Raw)
	return h[:]
}

// ServerCertificate finds the leaf certificate a server configuration presents on a connection,
// asking GetCertificate again with what the handshake settled (the name, the version, the cipher
// suite) when the configuration has one. A certificate renewed in between gives a binding that
// no longer matches, and that login fails once; the next one binds to the new certificate.
func ServerCertificate(cfg *tls.Config, cs tls.ConnectionState) (*x509.Certificate, error) {
	if cfg == nil {
		return nil, errors.New("no TLS configuration")
	}
	var c *tls.Certificate
	switch {
	case cfg.GetCertificate != nil:
		var err error
		c, err = cfg.GetCertificate(&tls.ClientHelloInfo{
			ServerName: cs.ServerName, SupportedVersions: []uint16{cs.Version},
			CipherSuites: []uint16{cs.CipherSuite},
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.Ed25519,
				tls.PSSWithSHA256, tls.PKCS1WithSHA256},
			SupportedCurves: []tls.CurveID{tls.X25519, tls.CurveP256},
			SupportedPoints: []uint8{0},
		})
		if err != nil {
			return nil, fmt.Errorf("server certificate for %q: %w", cs.ServerName, err)
		}
	case len(cfg.Certificates) > 0:
		c = &cfg.Certificates[0]
	}
	if c == nil || len(c.Certificate) == 0 {
		return nil, errors.New("no server certificate")
	}
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	return x509.ParseCertificate(c.Certificate[0])
}
