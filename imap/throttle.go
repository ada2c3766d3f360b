package imap

import (
	"sync"
	"time"
)

// loginThrottle remembers recent failed logins per client IP and per user name, in memory, so
// each further failure costs a longer wait: base, 2×base, 4×base … up to max. It slows guessing
// from one address against many users and from many addresses against one user. Records are
// forgotten after window; the map is bounded.
type loginThrottle struct {
	base, max time.Duration
	window    time.Duration
	limit     int

	mu      sync.Mutex
	records map[string]*failRecord
}

type failRecord struct {
	count int
	last  time.Time
}

func newLoginThrottle(base, max time.Duration) *loginThrottle {
	return &loginThrottle{base: base, max: max, window: 15 * time.Minute, limit: 10000, records: map[string]*failRecord{}}
}

// failed records a failure from ip for user and returns how long to wait before answering.
func (t *loginThrottle) failed(ip, user string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	n := t.bump("ip\x00"+ip, now)
	if user != "" {
		n = max(n, t.bump("user\x00"+user, now))
	}
	d := t.base
	for i := 1; i < n && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

// succeeded forgets the user's failures; the IP keeps its record, so logging into one's own
// account does not reset a guessing budget.
func (t *loginThrottle) succeeded(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.records, "user\x00"+user)
}

func (t *loginThrottle) bump(key string, now time.Time) int {
	r, ok := t.records[key]
	if ok && now.Sub(r.last) > t.window {
		r.count = 0
	}
	if !ok {
		if len(t.records) >= t.limit {
			for k, old := range t.records {
				if now.Sub(old.last) > t.window || len(t.records) >= t.limit {
					delete(t.records, k)
				}
			}
		}
		r = &failRecord{}
		t.records[key] = r
	}
	r.count++
	r.last = now
	return r.count
}
