// Package loginlimit slows password guessing for every protocol that takes a password (IMAP,
// POP3, submission, the admin page) and writes the one failed-login log line fail2ban reads.
// It keeps its records in memory only and never sees a password.
package loginlimit

import (
	"log/slog"
	"sync"
	"time"
)

// Throttle remembers recent failed logins per client IP and per user name, so each further
// failure costs the client a longer wait: base, 2×base, 4×base … up to max. It slows guessing
// from one address against many users and from many addresses against one user. Records are
// forgotten after a window of 15 minutes, and the map is bounded: when full, expired records go,
// else the oldest one.
type Throttle struct {
	base, max time.Duration
	window    time.Duration
	limit     int
	now       func() time.Time

	mu      sync.Mutex
	records map[string]*record
}

type record struct {
	count int
	last  time.Time
}

// New returns a throttle whose first failure waits base and whose waits double up to max.
func New(base, max time.Duration) *Throttle {
	return &Throttle{base: base, max: max, window: 15 * time.Minute, limit: 10000, now: time.Now,
		records: map[string]*record{}}
}

// Failed records a failed login from ip for user and returns how long to wait before answering.
func (t *Throttle) Failed(ip, user string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	n := t.bump("ip\x00"+ip, now)
	if user != "" {
		n = max(n, t.bump("user\x00"+user, now))
	}
	return t.delay(n)
}

// Succeeded forgets the user's failures. The IP keeps its record: logging into one's own account
// must not reset the guessing budget of the address it came from.
func (t *Throttle) Succeeded(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.records, "user\x00"+user)
}

func (t *Throttle) delay(count int) time.Duration {
	if count <= 0 || t.base <= 0 {
		return 0
	}
	d := t.base
	for i := 1; i < count && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

func (t *Throttle) bump(key string, now time.Time) int {
	r, ok := t.records[key]
	if ok && now.Sub(r.last) > t.window {
		r.count = 0
	}
	if !ok {
		if len(t.records) >= t.limit {
			t.evict(now)
		}
		r = &record{}
		t.records[key] = r
	}
	r.count++
	r.last = now
	return r.count
}

// evict drops expired records, or the oldest one if none has expired.
func (t *Throttle) evict(now time.Time) {
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

// LogFailure writes the failed-login line, the same for every protocol so one fail2ban filter
// matches them all:
//
//	level=WARN msg="auth failed" proto=imap ip=192.0.2.7 user=alice@example.org
func LogFailure(log *slog.Logger, proto, ip, user string) {
	log.Warn("auth failed", "proto", proto, "ip", ip, "user", user)
}
