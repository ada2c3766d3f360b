package pop3

import (
	"sync"
	"time"
)

// loginThrottle remembers recent failed logins per client IP and per user
// name, in memory, so that each further failure costs the client a longer
// wait: base, 2*base, 4*base ... up to max. It slows password guessing from
// one address against many users and from many addresses against one user.
// The map is bounded: old records are forgotten after window, and when it is
// full the oldest record makes room.
type loginThrottle struct {
	base, max time.Duration
	window    time.Duration
	limit     int
	now       func() time.Time

	mu      sync.Mutex
	records map[string]*failRecord
}

type failRecord struct {
	count int
	last  time.Time
}

func newLoginThrottle(base, max time.Duration) *loginThrottle {
	return &loginThrottle{
		base:    base,
		max:     max,
		window:  15 * time.Minute,
		limit:   10000,
		now:     time.Now,
		records: make(map[string]*failRecord),
	}
}

// failed records a failed login from ipKey for user and returns how long the
// session must wait before it answers.
func (t *loginThrottle) failed(ipKey, user string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	ipCount := t.bump("ip\x00"+ipKey, now)
	userCount := 0
	if user != "" {
		userCount = t.bump("user\x00"+user, now)
	}
	return t.delay(max(ipCount, userCount))
}

// succeeded forgets the failures recorded for user. The IP's record stays:
// logging into one's own account must not reset a guessing budget.
func (t *loginThrottle) succeeded(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.records, "user\x00"+user)
}

func (t *loginThrottle) delay(count int) time.Duration {
	if count <= 0 || t.base <= 0 {
		return 0
	}
	d := t.base
	for i := 1; i < count && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

func (t *loginThrottle) bump(key string, now time.Time) int {
	r, ok := t.records[key]
	if ok && now.Sub(r.last) > t.window {
		r.count = 0
	}
	if !ok {
		if len(t.records) >= t.limit {
			t.evict(now)
		}
		r = &failRecord{}
		t.records[key] = r
	}
	r.count++
	r.last = now
	return r.count
}

// evict drops expired records, or the oldest one if none has expired.
func (t *loginThrottle) evict(now time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, r := range t.records {
		if now.Sub(r.last) > t.window {
			delete(t.records, k)
			continue
		}
		if oldestKey == "" || r.last.Before(oldest) {
			oldestKey, oldest = k, r.last
		}
	}
	if len(t.records) >= t.limit && oldestKey != "" {
		delete(t.records, oldestKey)
	}
}
