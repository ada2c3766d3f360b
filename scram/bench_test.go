package scram_test

import (
	"testing"

	"mailstead/scram"
)

// BenchmarkDerive is what setting a password (or a first PLAIN login of an older account) adds:
// one PBKDF2-SHA-256 of scram.Iterations rounds.
func BenchmarkDerive(b *testing.B) {
	salt := scram.NewSalt()
	for b.Loop() {
		if _, err := scram.Derive("correct horse", salt, scram.Iterations); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerExchange is the server's share of one SCRAM login: HMACs and hashes only, the
// PBKDF2 being the client's. Compare with store's argon2id check for PLAIN (BenchmarkCheckPassword).
func BenchmarkServerExchange(b *testing.B) {
	salt := scram.NewSalt()
	keys, _ := scram.Derive("correct horse", salt, scram.Iterations)
	c := &client{user: "alice", password: "correct horse", gs2: "n,,"}
	t := &testing.T{}
	lookup := func(string) (scram.Credentials, error) {
		return scram.Credentials{Salt: salt, Iterations: scram.Iterations, Keys: []scram.Keys{keys}}, nil
	}
	for b.Loop() {
		s := &scram.Server{Lookup: lookup}
		s.Next(nil)
		first, _, _ := s.Next([]byte(c.first()))
		b.StopTimer()
		final := c.final(t, string(first)) // the client's PBKDF2, not the server's work
		b.StartTimer()
		if _, _, err := s.Next([]byte(final)); err != nil {
			b.Fatal(err)
		}
	}
}
