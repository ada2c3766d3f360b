// Package scram is the server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677)
// with the tls-exporter (RFC 9266) and tls-server-end-point (RFC 5929 §4) channel bindings, for
// every protocol that takes a SASL login. It derives and checks keys only; it never sees a stored
// password, never touches the store, and speaks no protocol of its own.
package scram

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/text/secure/precis"
)

// Mechanism names (RFC 7677 §2).
const (
	SHA256     = "SCRAM-SHA-256"
	SHA256Plus = "SCRAM-SHA-256-PLUS"
)

// Iterations is the PBKDF2 count of newly derived credentials (RFC 7677 §4: at least 4096).
const Iterations = 4096

// Keys are what the server keeps of one password (RFC 5802 §3): neither lets anyone log in.
type Keys struct {
	StoredKey, ServerKey []byte
}

// Credentials are the keys an account can log in with, all derived with one salt and count, so
// that the salt the server sends first fits every password of the account (its own and its app
// passwords).
type Credentials struct {
	Salt       []byte
	Iterations int
	Keys       []Keys
}

// NewSalt returns a random 16-byte salt.
func NewSalt() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

// Derive computes the keys of a password (RFC 5802 §3). The password is prepared with the
// OpaqueString profile (RFC 8265, the successor of SASLprep); one that does not prepare is used
// as it is.
func Derive(password string, salt []byte, iterations int) (Keys, error) {
	if p, err := precis.OpaqueString.String(password); err == nil {
		password = p
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return Keys{}, fmt.Errorf("scram derive: %w", err)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return Keys{StoredKey: stored[:], ServerKey: mac(salted, "Server Key")}, nil
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// Binding gives the channel-binding data of the connection for a binding type, or an error when
// it has none of that type.
type Binding func(cbType string) ([]byte, error)

// ErrFailed is a failed login (wrong password, unknown user, binding mismatch): the protocol
// answers it as its authentication failure.
var ErrFailed = errors.New("scram: authentication failed")

// Server runs one SCRAM exchange as a go-sasl Server (Next). It is used once.
type Server struct {
	// Plus is true for SCRAM-SHA-256-PLUS: the client must bind to the channel.
	Plus bool
	// Binding is the connection's channel binding; nil on a connection without TLS, where no
	// PLUS is offered (and a client saying "y" is believed).
	Binding Binding
	// Lookup returns an account's credentials. For an unknown user it must return made-up ones
	// (same shape, stable salt) and no error, so that a client cannot tell who exists.
	Lookup func(user string) (Credentials, error)
	// Verified is called with the user and the index of the key that matched, once the proof
	// checked; its error fails the login (for example, too many sessions).
	Verified func(user string, key int) error
	// Failed is called once when the proof or the binding is wrong, for the failed-login budget
	// and log line.
	Failed func(user string)

	step       int
	user       string
	gs2Header  string
	clientBare string
	serverMsg  string
	nonce      string
	cbType     string
	creds      Credentials
	serverSig  []byte
}

// Next takes the client's message and returns the server's (RFC 5802 §5).
func (s *Server) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step = 1
		if resp == nil {
			return []byte{}, false, nil // RFC 4422 §5: the client starts; ask for its message
		}
		return s.first(string(resp))
	case 1:
		s.step = 2
		return s.first(string(resp))
	case 2:
		s.step = 3
		return s.final(string(resp))
	case 3:
		// The client acknowledged server-final-message (the protocols without success data).
		s.step = 4
		return nil, true, nil
	}
	return nil, true, errors.New("scram: unexpected message")
}

func (s *Server) first(msg string) ([]byte, bool, error) {
	s.step = 2
	// gs2-header = gs2-cbind-flag "," [authzid] ","
	flag, rest, ok1 := strings.Cut(msg, ",")
	authz, bare, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return nil, true, errors.New("scram: malformed client-first-message")
	}
	s.gs2Header = flag + "," + authz + ","
	switch {
	case strings.HasPrefix(flag, "p="):
		s.cbType = flag[2:]
		if !s.Plus || s.Binding == nil {
			return nil, true, errors.New("scram: channel binding requested without -PLUS")
		}
	case flag == "y":
		// The client could bind but thinks we cannot. Where we offer PLUS that is a downgrade
		// (RFC 5802 §6).
		if s.Plus || s.Binding != nil {
			return nil, true, s.fail("", "scram: downgrade from -PLUS")
		}
	case flag == "n":
		if s.Plus {
			return nil, true, errors.New("scram: -PLUS without channel binding")
		}
	default:
		return nil, true, errors.New("scram: malformed gs2-cbind-flag")
	}
	s.clientBare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || strings.HasPrefix(attrs[0], "m=") {
		return nil, true, errors.New("scram: malformed client-first-message-bare")
	}
	user, ok := unescapeName(strings.TrimPrefix(attrs[0], "n="))
	if !strings.HasPrefix(attrs[0], "n=") || !ok || user == "" {
		return nil, true, errors.New("scram: malformed username")
	}
	if authz != "" {
		a, ok := unescapeName(strings.TrimPrefix(authz, "a="))
		if !strings.HasPrefix(authz, "a=") || !ok || !strings.EqualFold(a, user) {
			return nil, true, s.fail(user, "scram: authorization identity must be the user's own")
		}
	}
	if !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
		return nil, true, errors.New("scram: malformed nonce")
	}
	s.user = user
	creds, err := s.Lookup(user)
	if err != nil {
		return nil, true, fmt.Errorf("scram lookup %s: %w", user, err)
	}
	s.creds = creds
	sn := make([]byte, 18)
	rand.Read(sn)
	s.nonce = attrs[1][2:] + base64.RawStdEncoding.EncodeToString(sn)
	s.serverMsg = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(creds.Salt) + ",i=" + strconv.Itoa(creds.Iterations)
	return []byte(s.serverMsg), false, nil
}

func (s *Server) final(msg string) ([]byte, bool, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, true, errors.New("scram: client-final-message without proof")
	}
	without, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(without, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || attrs[1] != "r="+s.nonce {
		return nil, true, s.fail(s.user, "scram: wrong nonce or channel binding attribute")
	}
	cb, err := base64.StdEncoding.DecodeString(attrs[0][2:])
	if err != nil {
		return nil, true, errors.New("scram: malformed channel binding")
	}
	want := []byte(s.gs2Header)
	if s.cbType != "" {
		data, err := s.Binding(s.cbType)
		if err != nil {
			return nil, true, s.fail(s.user, "scram: channel binding "+s.cbType+" unavailable")
		}
		want = append(want, data...)
	}
	if !bytes.Equal(cb, want) {
		return nil, true, s.fail(s.user, "scram: channel bindings do not match")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != sha256.Size {
		return nil, true, s.fail(s.user, "scram: malformed proof")
	}
	authMsg := s.clientBare + "," + s.serverMsg + "," + without
	for k, keys := range s.creds.Keys {
		sig := mac(keys.StoredKey, authMsg)
		clientKey := make([]byte, len(proof))
		subtle.XORBytes(clientKey, proof, sig)
		got := sha256.Sum256(clientKey)
		if subtle.ConstantTimeCompare(got[:], keys.StoredKey) == 1 {
			if s.Verified != nil {
				if err := s.Verified(s.user, k); err != nil {
					return nil, true, err
				}
			}
			s.serverSig = mac(keys.ServerKey, authMsg)
			return []byte("v=" + base64.StdEncoding.EncodeToString(s.serverSig)), false, nil
		}
	}
	return nil, true, s.fail(s.user, "scram: invalid proof")
}

func (s *Server) fail(user, why string) error {
	if s.Failed != nil {
		s.Failed(user)
	}
	return fmt.Errorf("%w: %s", ErrFailed, why)
}

// User is the authenticated user once the exchange succeeded.
func (s *Server) User() string { return s.user }

// unescapeName undoes RFC 5802 §5.1 saslname escaping (=2C is ',', =3D is '='); any other '='
// is malformed.
func unescapeName(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}
