package dns_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"mailstead/dns"
	"mailstead/dns/dnstest"
)

// clock is a settable time for the cache.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestCache asks a name, changes the zone, and asks again before and after the time the answer
// may be kept: the cached answer must be the old one exactly until then, and never be kept at all
// where RFC 2308 or a failure says so.
func TestCache(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(z *dnstest.Zone) // before the first lookup
		change func(z *dnstest.Zone) // after it
		negTTL uint32                // the zone's SOA on negative answers (0: none)
		keep   time.Duration         // how long the first answer must be served; 0: not cached
	}{
		{name: "positive, capped at MaxTTL",
			setup:  func(z *dnstest.Zone) { z.AddTXT("a.test", "one") },
			change: func(z *dnstest.Zone) { z.Remove("a.test", "TXT"); z.AddTXT("a.test", "two") },
			keep:   60 * time.Second},
		{name: "positive, record TTL below the cap",
			setup:  func(z *dnstest.Zone) { z.Add(`a.test. 5 IN TXT "one"`) },
			change: func(z *dnstest.Zone) { z.Remove("a.test", "TXT"); z.AddTXT("a.test", "two") },
			keep:   5 * time.Second},
		{name: "positive, TTL 0 is not kept",
			setup:  func(z *dnstest.Zone) { z.Add(`a.test. 0 IN TXT "one"`) },
			change: func(z *dnstest.Zone) { z.Remove("a.test", "TXT"); z.AddTXT("a.test", "two") }},
		{name: "NXDOMAIN with SOA, capped at MaxNegativeTTL",
			change: func(z *dnstest.Zone) { z.AddTXT("a.test", "two") },
			negTTL: 300, keep: 30 * time.Second},
		{name: "NODATA with SOA, SOA minimum below the cap",
			setup:  func(z *dnstest.Zone) { z.Add("a.test. 300 IN A 192.0.2.1") },
			change: func(z *dnstest.Zone) { z.AddTXT("a.test", "two") },
			negTTL: 10, keep: 10 * time.Second},
		{name: "NXDOMAIN without SOA is not kept",
			change: func(z *dnstest.Zone) { z.AddTXT("a.test", "two") }},
		{name: "SERVFAIL is not kept",
			setup:  func(z *dnstest.Zone) { z.SetFailure("a.test", 2) },
			change: func(z *dnstest.Zone) { z.SetFailure("a.test", 0); z.AddTXT("a.test", "two") },
			negTTL: 300},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z := dnstest.NewZone(t)
			z.SetNegativeTTL(tc.negTTL)
			if tc.setup != nil {
				tc.setup(z)
			}
			clk := &clock{now: time.Unix(1e9, 0)}
			r := dns.New(z.Addr()).Cached(dns.NewCache(dns.CacheConfig{Now: clk.Now}))
			r.Timeout, r.Attempts = 500*time.Millisecond, 1
			ask := func() string {
				txt, err := r.LookupTXT(context.Background(), "A.test")
				return fmt.Sprint(txt, err != nil)
			}
			first := ask()
			tc.change(z)
			if tc.keep > 0 {
				clk.advance(tc.keep - time.Second)
				if got := ask(); got != first {
					t.Fatalf("before %v: got %s, want the kept %s", tc.keep, got, first)
				}
				clk.advance(time.Second)
			}
			if got := ask(); got != "[two] false" {
				t.Fatalf("after %v: got %s, want the zone's new answer (first was %s)", tc.keep, got, first)
			}
		})
	}
}

// TestCacheBounded fills a small cache past its size: it never holds more, and still answers.
func TestCacheBounded(t *testing.T) {
	z := dnstest.NewZone(t)
	c := dns.NewCache(dns.CacheConfig{MaxEntries: 4})
	r := dns.New(z.Addr()).Cached(c)
	r.Timeout, r.Attempts = 500*time.Millisecond, 1
	for i := range 10 {
		name := fmt.Sprintf("h%d.test", i)
		z.Add(name + ". 300 IN A 192.0.2.1")
		if _, err := r.LookupIP(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		if c.Len() > 4 {
			t.Fatalf("after %d names the cache holds %d answers, more than its 4", i+1, c.Len())
		}
	}
}

// TestUncachedResolverAsksEveryTime: a resolver without a cache sees a change at once (the admin
// page's live checks rely on it).
func TestUncachedResolverAsksEveryTime(t *testing.T) {
	z, r := newZone(t)
	z.AddTXT("a.test", "one")
	if _, err := r.LookupTXT(context.Background(), "a.test"); err != nil {
		t.Fatal(err)
	}
	z.Remove("a.test", "TXT")
	z.AddTXT("a.test", "two")
	if txt, err := r.LookupTXT(context.Background(), "a.test"); err != nil || len(txt) != 1 || txt[0] != "two" {
		t.Fatalf("got %v, %v; want [two]", txt, err)
	}
}
