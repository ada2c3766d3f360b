package junk_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailstead/junk"
)

// benchMessage is a plain-text message of about size bytes drawn from a vocabulary of n words.
func benchMessage(r *rand.Rand, n, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender%d@example%d.test\r\nTo: me@example.net\r\nSubject: word%d word%d word%d\r\n"+
		"Message-ID: <%d@example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		r.IntN(50), r.IntN(20), r.IntN(n), r.IntN(n), r.IntN(n), r.Int64())
	for b.Len() < size {
		fmt.Fprintf(&b, "word%d ", r.IntN(n))
		if r.IntN(12) == 0 {
			b.WriteString("\r\n")
		}
	}
	if r.IntN(3) == 0 {
		fmt.Fprintf(&b, "\r\nhttps://site%d.example/path\r\n", r.IntN(100))
	}
	return []byte(b.String())
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClassify5KB: the cost of filing one 5 KB message for one account with a trained model
// in a real SQLite store (tokenizing, one token lookup query, marks, scoring). The bound
// is 1 ms of CPU; cpu-ms/op reports it (the process's user+system time per message).
func BenchmarkClassify5KB(b *testing.B) {
	f, _, acc := newFilter(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		if _, err := f.Train(ctx, acc, benchMessage(r, 8000, 5000), i%2 == 0); err != nil {
			b.Fatal(err)
		}
	}
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = benchMessage(r, 8000, 5000)
	}
	b.SetBytes(5000)
	b.ResetTimer()
	start := cpuTime()
	for i := 0; b.Loop(); i++ {
		if _, _, err := f.Classify(ctx, acc, msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkTokenize5KB: tokenizing alone, the part that grows with the message.
func BenchmarkTokenize5KB(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	msg := benchMessage(r, 8000, 5000)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		_ = junk.Tokenize(msg)
	}
}
