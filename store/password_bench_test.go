package store

import "testing"

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
