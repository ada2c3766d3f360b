package loginlimit

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := New(time.Second, 8*time.Second)
	th.now = func() time.Time { return now }

	// One IP guessing: 1s, 2s, 4s, 8s, 8s.
	for i, want := range []time.Duration{1, 2, 4, 8, 8} {
		if got := th.Failed("192.0.2.1", fmt.Sprintf("user%d", i)); got != want*time.Second {
			t.Errorf("failure %d from one IP: delay %v, want %v", i+1, got, want*time.Second)
		}
	}
	// Many IPs against one user: the user's count grows.
	for i, want := range []time.Duration{1, 2, 4} {
		if got := th.Failed(fmt.Sprintf("198.51.100.%d", i), "victim"); got != want*time.Second {
			t.Errorf("failure %d against one user: delay %v, want %v", i+1, got, want*time.Second)
		}
	}
	// Success clears the user's record, not the IP's.
	th.Succeeded("victim")
	if got := th.Failed("203.0.113.9", "victim"); got != time.Second {
		t.Errorf("after success: delay %v, want 1s", got)
	}
	if got := th.Failed("192.0.2.1", "someone"); got != 8*time.Second {
		t.Errorf("IP record lost: delay %v", got)
	}
	// Records expire after the window.
	now = now.Add(time.Hour)
	if got := th.Failed("192.0.2.1", "someone"); got != time.Second {
		t.Errorf("after the window: delay %v, want 1s", got)
	}
}

func TestThrottleBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := New(time.Second, time.Minute)
	th.limit = 100
	th.now = func() time.Time { now = now.Add(time.Millisecond); return now }
	for i := range 1000 {
		th.Failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf("u%d", i))
	}
	if n := len(th.records); n > 100 {
		t.Fatalf("throttle holds %d records, limit 100", n)
	}
}
