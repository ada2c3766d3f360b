package mailauth_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"mailstead/mailauth"
)

func benchMessage() []byte {
	return message("alice@b.test", "bench", strings.Repeat("A line of a typical message body, long enough.\r\n", 200))
}

// BenchmarkSign: both signatures (RSA 2048 + Ed25519) of a 10 kB message,
// the cost the queue pays per outbound message.
func BenchmarkSign(b *testing.B) {
	k := signingKeys(b)
	msg := benchMessage()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := mailauth.Sign(msg, "b.test", k.rsa, k.ed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck: the whole inbound check of a signed 10 kB message against
// the loopback fake zone (DNS round trips included, no caching).
func BenchmarkCheck(b *testing.B) {
	e := newEnvTB(b)
	msg, err := mailauth.Sign(benchMessage(), "b.test", e.keys.rsa, e.keys.ed)
	if err != nil {
		b.Fatal(err)
	}
	in := mailauth.Input{IP: net.ParseIP(senderIP), Helo: "mail.b.test", MailFrom: "alice@b.test", Message: bytes.NewReader(msg)}
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		res, err := e.checker.Check(context.Background(), in)
		if err != nil || res.Action.Verdict != mailauth.Accept {
			b.Fatalf("%v %+v", err, res)
		}
	}
}
