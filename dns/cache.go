package dns

import (
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// CacheConfig bounds a Cache. Zero fields take the defaults.
type CacheConfig struct {
	// MaxEntries is how many answers are kept at most (default 1024).
	MaxEntries int
	// MaxTTL caps how long a positive answer is kept, whatever its TTL (default 60s): long enough
	// that a busy sender's SPF, DMARC and PTR records are asked once for a run of messages, short
	// enough that a changed record is seen within a minute.
	MaxTTL time.Duration
	// MaxNegativeTTL caps how long "no such name" and "no records" are kept (default 30s).
	MaxNegativeTTL time.Duration
	// Now is the clock (default time.Now); tests move it instead of sleeping.
	Now func() time.Time
}

// Cache keeps answers for a short while, positive and negative (RFC 2308), so that a run of
// messages from one sender asks the same questions once. Only complete answers are kept: NOERROR
// with records, and NXDOMAIN or NODATA when the answer carries the zone's SOA, whose TTL and
// minimum bound the negative TTL (RFC 2308 §5: without an SOA a negative answer is not cached).
// Failures, timeouts, SERVFAIL and truncated answers are never kept. A Cache is given to a
// Resolver with Resolver.Cached; it is safe for concurrent use.
type Cache struct {
	cfg     CacheConfig
	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

type cacheKey struct {
	name  string // fully qualified, lower case
	qtype uint16
}

type cacheEntry struct {
	msg     *mdns.Msg // shared by every reader: never modified once stored
	server  string
	expires time.Time
}

// NewCache returns an empty cache.
func NewCache(cfg CacheConfig) *Cache {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 1024
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 60 * time.Second
	}
	if cfg.MaxNegativeTTL <= 0 {
		cfg.MaxNegativeTTL = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{cfg: cfg, entries: map[cacheKey]cacheEntry{}}
}

// Len reports how many answers are kept, expired ones included until they are swept.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) get(k cacheKey) (*mdns.Msg, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, "", false
	}
	if !c.cfg.Now().Before(e.expires) {
		delete(c.entries, k)
		return nil, "", false
	}
	return e.msg, e.server, true
}

func (c *Cache) put(k cacheKey, msg *mdns.Msg, server string) {
	ttl, ok := c.ttl(msg, k.qtype)
	if !ok {
		return
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, present := c.entries[k]; !present && len(c.entries) >= c.cfg.MaxEntries {
		for old, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, old)
			}
		}
		// Still full of live answers: drop any one (map order is random enough for a cache
		// whose entries live a minute at most).
		for old := range c.entries {
			if len(c.entries) < c.cfg.MaxEntries {
				break
			}
			delete(c.entries, old)
		}
	}
	c.entries[k] = cacheEntry{msg: msg, server: server, expires: now.Add(ttl)}
}

// ttl is how long msg may be kept as the answer for qtype: the smallest TTL of the records
// answering it (a CNAME chain included), or for a negative answer the SOA's TTL and minimum
// (RFC 2308 §5), capped by the configuration. ok is false for answers not to keep.
func (c *Cache) ttl(msg *mdns.Msg, qtype uint16) (time.Duration, bool) {
	if msg.Truncated {
		return 0, false
	}
	switch msg.Rcode {
	case mdns.RcodeSuccess, mdns.RcodeNameError:
	default:
		return 0, false
	}
	var least uint32
	found := false
	if msg.Rcode == mdns.RcodeSuccess {
		for _, rr := range msg.Answer {
			t := rr.Header().Ttl
			if !found || t < least {
				least = t
			}
			if rr.Header().Rrtype == qtype {
				found = true
			}
		}
	}
	if found {
		return capTTL(least, c.cfg.MaxTTL)
	}
	for _, rr := range msg.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			return capTTL(minU32(soa.Hdr.Ttl, soa.Minttl), c.cfg.MaxNegativeTTL)
		}
	}
	return 0, false
}

func capTTL(ttl uint32, limit time.Duration) (time.Duration, bool) {
	d := min(time.Duration(ttl)*time.Second, limit)
	return d, d > 0
}

func minU32(a, b uint32) uint32 {
	if a < b {
		return a
	}
	return b
}
