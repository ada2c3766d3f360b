package loginlimit

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func testLimiter(cfg Config) (*Limiter, *time.Time) {
	l := New(cfg)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	return l, &now
}

// tries makes n attempts that fail and counts how many were let through to a password check.
func tries(l *Limiter, kind Kind, n int, ip func(i int) string, user string) (checked int) {
	for i := range n {
		a, err := l.Begin(kind, ip(i), user)
		if err == nil {
			checked++
			a.Failed()
		}
	}
	return checked
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"not an ip", "not an ip"},
	} {
		if got := ClientKey(tc.ip); got != tc.want {
			t.Errorf("ClientKey(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}

// An account sees at most PerAccount wrong guesses per window from any mix of addresses, over
// mail and the web together.
func TestAccountBudgetAcrossAddressesAndProtocols(t *testing.T) {
	l, now := testLimiter(Config{})
	spread := func(i int) string { return fmt.Sprintf("10.%d.%d.1", i/250, i%250) }
	got := tries(l, Mail, 50, spread, "victim@example.org")
	got += tries(l, Web, 50, func(i int) string { return spread(i + 1000) }, "Victim@Example.org")
	if got != 60 {
		t.Errorf("%d guesses checked against one account in an hour, want 60", got)
	}
	// Another account is not affected.
	if got := tries(l, Mail, 5, spread, "other@example.org"); got != 5 {
		t.Errorf("other account: %d of 5 checked", got)
	}
	// The window slides.
	*now = now.Add(time.Hour)
	if got := tries(l, Mail, 1, spread, "victim@example.org"); got != 1 {
		t.Error("no guess allowed after the window")
	}
}

// One /64 is one client: its addresses share a budget; a neighbouring /64 has its own.
func TestClientBudgetGroupsIPv6(t *testing.T) {
	l, _ := testLimiter(Config{})
	in64 := func(i int) string { return fmt.Sprintf("2001:db8:0:1::%x", i+1) }
	if got := tries(l, Mail, 100, in64, ""); got != 30 {
		t.Errorf("one /64: %d checked, want 30", got)
	}
	if got := tries(l, Mail, 1, func(int) string { return "2001:db8:0:2::1" }, ""); got != 1 {
		t.Error("the next /64 was refused")
	}
}

// A client that logged into the account before keeps logging in while the account is attacked
// and while its own address is over its budget.
func TestKnownClientKeepsWorking(t *testing.T) {
	l, _ := testLimiter(Config{})
	a, err := l.Begin(Mail, "192.0.2.1", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	a.Succeeded()
	attackers := func(i int) string { return fmt.Sprintf("198.51.100.%d", i%200) }
	tries(l, Mail, 500, attackers, "alice@example.org")
	tries(l, Mail, 100, func(int) string { return "192.0.2.1" }, "someone@example.org")
	if _, err := l.Begin(Mail, "203.0.113.5", "alice@example.org"); !errors.Is(err, ErrTooMany) {
		t.Errorf("a new address during the attack: %v, want ErrTooMany", err)
	}
	a, err = l.Begin(Mail, "192.0.2.1", "alice@example.org")
	if err != nil {
		t.Fatalf("the owner's known address was refused: %v", err)
	}
	a.Succeeded()
	// The known address still has a budget of its own.
	if got := tries(l, Mail, 100, func(int) string { return "192.0.2.1" }, "alice@example.org"); got != 60 {
		t.Errorf("known client: %d wrong guesses checked, want 60", got)
	}
}

// Begin counts the failure before the check: a burst of parallel attempts cannot pass the limit
// while each is being checked, and a success gives its reservation back.
func TestBurstCannotPassTheLimit(t *testing.T) {
	l := New(Config{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []*Attempt
	for range 250 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a, err := l.Begin(Web, "192.0.2.9", "admin@example.org"); err == nil {
				mu.Lock()
				held = append(held, a) // still "checking": nothing decided yet
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(held) != 10 {
		t.Fatalf("%d of 250 parallel web logins let through, want 10", len(held))
	}
	for _, a := range held {
		a.Cancel()
	}
	if got := tries(l, Web, 20, func(int) string { return "192.0.2.9" }, "admin@example.org"); got != 10 {
		t.Errorf("after cancelled attempts: %d let through, want 10", got)
	}
}

// Each kind of secret has its own per-client budget.
func TestSeparateBudgets(t *testing.T) {
	l, _ := testLimiter(Config{})
	ip := func(int) string { return "192.0.2.3" }
	if got := tries(l, APIToken, 50, ip, ""); got != 10 {
		t.Errorf("API tokens: %d, want 10", got)
	}
	for _, k := range []Kind{SetupToken, Web, Mail} {
		if got := tries(l, k, 1, ip, "admin@example.org"); got != 1 {
			t.Errorf("%v refused after bad API tokens", k)
		}
	}
}

func TestTablesBounded(t *testing.T) {
	l, now := testLimiter(Config{MaxRecords: 100})
	for i := range 1000 {
		*now = now.Add(time.Millisecond)
		if a, err := l.Begin(Mail, fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf("u%d", i)); err == nil {
			a.Succeeded()
			a, _ = l.Begin(Mail, fmt.Sprintf("10.1.%d.%d", i/256, i%256), fmt.Sprintf("u%d", i))
			a.Failed()
		}
	}
	for i, tb := range l.windows {
		if len(tb.m) > 100 {
			t.Errorf("table %d holds %d records, limit 100", i, len(tb.m))
		}
	}
	if len(l.known.m) > 100 {
		t.Errorf("known clients: %d records", len(l.known.m))
	}
}
