package smtp

import (
	"sync"
	"time"
)

// loginThrottle slows password guessing on submission: each recent failure from an IP, or for a
// user name, makes the next failed answer wait longer (base, 2×base, 4×base … up to max), so
// neither one address trying many users nor many addresses trying one user gets far. Records
// expire after window and the map is bounded.
type loginThrottle struct {
	base, max time.Duration
	window    time.Duration
	limit     int

	mu    sync.Mutex
	fails map[string]*loginFails
}

type loginFails struct {
	n    int
	last time.Time
}

func newLoginThrottle(base, max time.Duration) *loginThrottle {
	return &loginThrottle{base: base, max: max, window: 15 * time.Minute, limit: 10000, fails: map[string]*loginFails{}}
}

// failed records a failure from ip for user and returns how long to wait before answering it.
func (t *loginThrottle) failed(ip, user string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	n := t.count("ip\x00"+ip, now)
	if user != "" {
		n = max(n, t.count("user\x00"+user, now))
	}
	d := t.base
	for i := 1; i < n && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

// succeeded clears the user's record; the IP's stays, so a good login does not reset the
// guessing budget of the address it came from.
func (t *loginThrottle) succeeded(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, "user\x00"+user)
}

func (t *loginThrottle) count(key string, now time.Time) int {
	f, ok := t.fails[key]
	if ok && now.Sub(f.last) > t.window {
		f.n = 0
	}
	if !ok {
		if len(t.fails) >= t.limit {
			for k, old := range t.fails {
				if now.Sub(old.last) > t.window || len(t.fails) >= t.limit {
					delete(t.fails, k)
				}
			}
		}
		f = &loginFails{}
		t.fails[key] = f
	}
	f.n++
	f.last = now
	return f.n
}
