package scram_test

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"

	"mailstead/mailtest/testkit"
	"mailstead/scram"
)

// client is the client side of RFC 5802 §3, written from the RFC for these tests.
type client struct {
	user, password, gs2 string
	cbData              []byte
	bare, want          string
}

func (c *client) first() string {
	c.bare = "n=" + c.user + ",r=clientnonce123"
	return c.gs2 + c.bare
}

func (c *client) final(t *testing.T, serverFirst string) string {
	t.Helper()
	var nonce, salt string
	iter := 0
	for _, a := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt = a[2:]
		case strings.HasPrefix(a, "i="):
			for _, d := range a[2:] {
				iter = iter*10 + int(d-'0')
			}
		}
	}
	s, _ := base64.StdEncoding.DecodeString(salt)
	k, err := scram.Derive(c.password, s, iter)
	if err != nil {
		t.Fatal(err)
	}
	without := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...)) + ",r=" + nonce
	authMsg := c.bare + "," + serverFirst + "," + without
	h := hmac.New(sha256.New, k.StoredKey)
	h.Write([]byte(authMsg))
	sig := h.Sum(nil)
	// ClientKey is not kept by the server; recompute it from the password as a client does.
	salted := pbkdf(t, c.password, s, iter)
	ck := hmacSum(salted, "Client Key")
	proof := make([]byte, len(ck))
	for i := range ck {
		proof[i] = ck[i] ^ sig[i]
	}
	c.want = "v=" + base64.StdEncoding.EncodeToString(hmacSum(hmacSum(salted, "Server Key"), authMsg))
	return without + ",p=" + base64.StdEncoding.EncodeToString(proof)
}

func hmacSum(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// tlsPair returns both ends of a real TLS 1.3 connection over loopback, and the server's
// certificate.
func tlsPair(t *testing.T) (server, client tls.ConnectionState, cert *x509.Certificate) {
	cfg := testkit.SelfSignedTLS(t, "mail.example.test")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan tls.ConnectionState)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(done)
			return
		}
		tc := tls.Server(c, cfg)
		tc.Handshake()
		done <- tc.ConnectionState()
		tc.Close()
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server = <-done
	cert, err = scram.ServerCertificate(cfg, server)
	if err != nil {
		t.Fatal(err)
	}
	return server, c.ConnectionState(), cert
}

func TestExchange(t *testing.T) {
	srvCS, cliCS, cert := tlsPair(t)
	exporter, err := cliCS.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	endPoint := sha256.Sum256(cliCS.PeerCertificates[0].Raw)
	if !cert.Equal(cliCS.PeerCertificates[0]) {
		t.Fatal("ServerCertificate is not the certificate the client saw")
	}
	salt := scram.NewSalt()
	keys, _ := scram.Derive("correct horse", salt, scram.Iterations)
	binding := scram.TLSBinding(srvCS, cert)
	tests := []struct {
		name     string
		plus     bool
		binding  scram.Binding
		c        client
		ok       bool
		failures int // Failed calls: a wrong secret, not a malformed message
	}{
		{"no binding, no TLS", false, nil, client{user: "alice", password: "correct horse", gs2: "n,,"}, true, 0},
		{"no binding over TLS", false, binding, client{user: "alice", password: "correct horse", gs2: "n,,"}, true, 0},
		{"PLUS tls-exporter", true, binding, client{user: "alice", password: "correct horse", gs2: "p=tls-exporter,,", cbData: exporter}, true, 0},
		{"PLUS tls-server-end-point", true, binding, client{user: "alice", password: "correct horse", gs2: "p=tls-server-end-point,,", cbData: endPoint[:]}, true, 0},
		{"authzid of the user", false, nil, client{user: "alice", password: "correct horse", gs2: "n,a=alice,"}, true, 0},
		{"PLUS binding mismatch", true, binding, client{user: "alice", password: "correct horse", gs2: "p=tls-exporter,,", cbData: make([]byte, 32)}, false, 1},
		{"PLUS end-point of another certificate", true, binding, client{user: "alice", password: "correct horse", gs2: "p=tls-server-end-point,,", cbData: exporter}, false, 1},
		{"PLUS unknown binding type", true, binding, client{user: "alice", password: "correct horse", gs2: "p=tls-unique,,", cbData: exporter}, false, 1},
		{"downgrade: y where PLUS is offered", false, binding, client{user: "alice", password: "correct horse", gs2: "y,,"}, false, 1},
		{"y without TLS is believed", false, nil, client{user: "alice", password: "correct horse", gs2: "y,,"}, true, 0},
		{"PLUS mechanism without binding", true, binding, client{user: "alice", password: "correct horse", gs2: "n,,"}, false, 0},
		{"wrong password", false, nil, client{user: "alice", password: "battery staple", gs2: "n,,"}, false, 1},
		{"unknown user", false, nil, client{user: "mallory", password: "correct horse", gs2: "n,,"}, false, 1},
		{"authzid of someone else", false, nil, client{user: "alice", password: "correct horse", gs2: "n,a=bob,"}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failures, verified := 0, ""
			s := &scram.Server{Plus: tt.plus, Binding: tt.binding,
				Lookup: func(user string) (scram.Credentials, error) {
					c := scram.Credentials{Salt: salt, Iterations: scram.Iterations}
					if user == "alice" {
						c.Keys = []scram.Keys{{StoredKey: []byte("other"), ServerKey: []byte("other")}, keys}
					}
					return c, nil
				},
				Verified: func(user string, key int) error { verified = user; return nil },
				Failed:   func(string) { failures++ },
			}
			err := run(t, s, &tt.c)
			if (err == nil) != tt.ok || failures != tt.failures {
				t.Fatalf("err %v, failures %d; want ok=%v, %d failures", err, failures, tt.ok, tt.failures)
			}
			if tt.ok && verified != "alice" {
				t.Errorf("verified %q", verified)
			}
			if !tt.ok && tt.failures > 0 && !errors.Is(err, scram.ErrFailed) {
				t.Errorf("err %v is not ErrFailed", err)
			}
		})
	}
}

// run plays the client against s: no initial response, as IMAP and POP3 clients do.
func run(t *testing.T, s *scram.Server, c *client) error {
	ch, done, err := s.Next(nil)
	if err != nil || done || len(ch) != 0 {
		t.Fatalf("start: %q %v %v", ch, done, err)
	}
	ch, _, err = s.Next([]byte(c.first()))
	if err != nil {
		return err
	}
	ch, _, err = s.Next([]byte(c.final(t, string(ch))))
	if err != nil {
		return err
	}
	if string(ch) != c.want {
		t.Fatalf("server-final %q, want %q", ch, c.want)
	}
	if _, done, err = s.Next([]byte{}); !done || err != nil {
		t.Fatalf("end: %v %v", done, err)
	}
	return nil
}

func pbkdf(t *testing.T, pw string, salt []byte, iter int) []byte {
	t.Helper()
	k, err := pbkdf2.Key(sha256.New, pw, salt, iter, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
