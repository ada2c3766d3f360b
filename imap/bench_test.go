package imap

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Benchmarks, run with e.g.
//
//	go test ./imap/ -run '^$' -bench . -benchtime 3x
//
// report messages per second and the peak Go heap of the process (server and client together:
// both run in the test binary) above what it held before the operation.

func benchMessage(i int) []byte {
	return []byte(fmt.Sprintf("Return-Path: <sender%d@example.org>\r\nReceived: from mx.example.org by mail.example.test; Tue, 03 Jan 2006 10:00:00 +0000\r\n"+
		"From: \"Sender %d\" <sender%d@example.org>\r\nTo: Alice <alice@example.test>\r\nCc: team@example.test\r\n"+
		"Subject: Benchmark message number %d about the quarterly figures\r\nDate: Tue, 03 Jan 2006 10:00:00 +0000\r\n"+
		"Message-ID: <bench-%d@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		i, i, i, i, i, strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 20)))
}

// populate appends n messages to alice's INBOX with 32 concurrent writers (group commit).
func populate(b *testing.B, e *testEnv, n int) {
	b.Helper()
	inbox := e.mailboxID(b, "INBOX")
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				flags := []string(nil)
				if i%3 == 0 {
					flags = []string{`\Seen`}
				}
				if _, _, err := e.st.Append(context.Background(), inbox, benchMessage(i), flags, time.Time{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// peakHeap runs fn while sampling the live heap and returns the peak above the starting level.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	<-done
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

func benchClient(b *testing.B, e *testEnv) *imapclient.Client {
	c := e.login(b, alice, alicePW, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	return c
}

// drain reads a FETCH's responses one by one, as a sync client would, without keeping them.
func drain(b *testing.B, cmd *imapclient.FetchCommand) int {
	n := 0
	for {
		m := cmd.Next()
		if m == nil {
			break
		}
		if _, err := m.Collect(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := cmd.Close(); err != nil {
		b.Fatal(err)
	}
	return n
}

func BenchmarkFetch10k(b *testing.B) {
	const n = 10000
	e := newEnv(b, nil)
	populate(b, e, n)
	c := benchClient(b, e)
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
	run := func(b *testing.B, opts *imap.FetchOptions) {
		var peak uint64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p := peakHeap(func() {
				if got := drain(b, c.Fetch(all, opts)); got != n {
					b.Fatalf("fetched %d messages, want %d", got, n)
				}
			})
			peak = max(peak, p)
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	}
	b.Run("FLAGS_ENVELOPE", func(b *testing.B) {
		run(b, &imap.FetchOptions{UID: true, Flags: true, Envelope: true})
	})
	b.Run("BODY.PEEK[]", func(b *testing.B) {
		run(b, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	})
}

func BenchmarkMailbox100k(b *testing.B) {
	const n = 100000
	e := newEnv(b, nil)
	populate(b, e, n)
	c := e.login(b, alice, alicePW, nil)
	b.Run("SELECT", func(b *testing.B) {
		var peak uint64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			peak = max(peak, peakHeap(func() {
				sel, err := c.Select("INBOX", nil).Wait()
				if err != nil || sel.NumMessages != n {
					b.Fatalf("SELECT: %v %+v", err, sel)
				}
			}))
			if err := c.Unselect().Wait(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    *imap.SearchCriteria
		want uint32
	}{
		{"SEARCH_UNSEEN_SINCE", &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}, Since: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}, n - (n+2)/3},
		{"SEARCH_HEADER_SUBJECT", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "number 4242 "}}}, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var peak uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				peak = max(peak, peakHeap(func() {
					res, err := c.UIDSearch(tc.c, &imap.SearchOptions{ReturnCount: true}).Wait()
					if err != nil || res.Count != tc.want {
						b.Fatalf("SEARCH: %v %+v, want %d", err, res, tc.want)
					}
				}))
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
