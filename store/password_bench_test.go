package store

import (
	"encoding/base64"
	"strings"
	"testing"
)

// BenchmarkCheckPassword is the server's share of one PLAIN or LOGIN: one argon2id
// verification (before the success cache), to compare with scram's BenchmarkServerExchange.
func BenchmarkCheckPassword(b *testing.B) {
	hash, err := HashPassword("correct horse")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !checkPassword(hash, "correct horse") {
			b.Fatal("no match")
		}
	}
}

// The dummy hash an unknown user is checked against has HashPassword's parameters (so it costs
// the same, and unknown users cannot be told by timing), decodes to a 16-byte salt and a 32-byte
// key, and matches no password.
func TestDummyHashLikeARealOne(t *testing.T) {
	real, err := HashPassword("x")
	if err != nil {
		t.Fatal(err)
	}
	params := func(h string) string { p := strings.Split(h, "$"); return strings.Join(p[:4], "$") }
	if params(dummyHash) != params(real) {
		t.Fatalf("dummy hash %q has other parameters than %q", dummyHash, real)
	}
	p := strings.Split(dummyHash, "$")
	salt, err1 := base64.RawStdEncoding.DecodeString(p[4])
	key, err2 := base64.RawStdEncoding.DecodeString(p[5])
	if err1 != nil || err2 != nil || len(salt) != 16 || len(key) != argonKeyLen {
		t.Fatalf("dummy hash salt %d bytes (%v), key %d bytes (%v)", len(salt), err1, len(key), err2)
	}
	if checkPassword(dummyHash, "mailstead-dummy-password") || checkPassword(dummyHash, "") {
		t.Fatal("a password matches the dummy hash")
	}
}
