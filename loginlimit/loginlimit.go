// Package loginlimit bounds password and token guessing for every protocol that takes a secret
// (SMTP AUTH, IMAP, POP3, the web login, API and setup tokens) and writes the one failed-login log
// line fail2ban reads. One Limiter serves every listener, so guesses spread over protocols and
// ports add up. It keeps its records in memory only and never sees a password.
package loginlimit

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"mailstead/maillog"
)

// Kind says which secret an attempt presents; each kind has its own per-client budget, so ten bad
// API calls do not lock a person out of the web login.
type Kind int

const (
	Mail       Kind = iota // an account or app password over SMTP, IMAP or POP3
	Web                    // an account password on the web login (or to change it)
	APIToken               // a bearer token on the JSON API
	SetupToken             // the one-time setup link
	numKinds
)

var kindNames = [numKinds]string{"mail", "web", "api", "setup"}

func (k Kind) String() string { return kindNames[k] }

// Budget is how many failures fit in a sliding window.
type Budget struct {
	Failures int
	Window   time.Duration
}

// Config sets the budgets. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// PerClient is each kind's budget per client address (an IPv4 address or an IPv6 /64).
	PerClient [numKinds]Budget
	// PerAccount bounds the wrong passwords one account sees over mail and the web together, from
	// any mix of addresses: a botnet gets this many guesses, not this many per bot.
	PerAccount Budget
	// KnownClient is how long a client address that logged into an account is remembered. From
	// such an address the account's and the address's shared budgets do not apply (the owner's
	// phone keeps working while the account is attacked); it has a PerAccount budget of its own.
	KnownClient time.Duration
	// MaxRecords bounds each table of records (addresses, accounts, known clients).
	MaxRecords int
	// MailLog writes the "auth failed" line and tells its subscribers (metrics); nil writes the
	// line only.
	MailLog *maillog.Log
}

// DefaultConfig: 30 mail and 10 web failures per address, 60 per account per hour.
var DefaultConfig = Config{
	PerClient: [numKinds]Budget{
		Mail:       {30, time.Hour},
		Web:        {10, 15 * time.Minute},
		APIToken:   {10, 15 * time.Minute},
		SetupToken: {10, 15 * time.Minute},
	},
	PerAccount:  Budget{60, time.Hour},
	KnownClient: 30 * 24 * time.Hour,
	MaxRecords:  20000,
}

// ErrTooMany refuses an attempt over a budget; the caller answers with a temporary failure and
// checks no secret.
var ErrTooMany = errors.New("too many failed logins, try again later")

// Limiter counts failures in sliding windows. Begin reserves a failure before the secret is
// checked, so a burst of parallel attempts cannot all pass the limit while each is being hashed;
// a success gives the reservation back.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	windows [numKinds + 2]table[[]time.Time] // per kind per client; per account; per known client
	known   table[time.Time]                 // account + client → when it last logged in
}

const (
	accountTable = int(numKinds)
	pairTable    = int(numKinds) + 1
)

// New returns a limiter; zero fields of cfg take DefaultConfig's values.
func New(cfg Config) *Limiter {
	for k := range cfg.PerClient {
		if cfg.PerClient[k].Failures <= 0 || cfg.PerClient[k].Window <= 0 {
			cfg.PerClient[k] = DefaultConfig.PerClient[k]
		}
	}
	if cfg.PerAccount.Failures <= 0 || cfg.PerAccount.Window <= 0 {
		cfg.PerAccount = DefaultConfig.PerAccount
	}
	if cfg.KnownClient <= 0 {
		cfg.KnownClient = DefaultConfig.KnownClient
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultConfig.MaxRecords
	}
	l := &Limiter{cfg: cfg, now: time.Now}
	for i := range l.windows {
		l.windows[i] = table[[]time.Time]{m: map[string][]time.Time{}, max: cfg.MaxRecords}
	}
	l.known = table[time.Time]{m: map[string]time.Time{}, max: cfg.MaxRecords}
	return l
}

// Attempt is one reserved failure. Exactly one of Succeeded, Failed or Cancel ends it.
type Attempt struct {
	l       *Limiter
	at      time.Time
	slots   []slot
	account string
	client  string
}

type slot struct {
	table int
	key   string
}

// ClientKey is the address a budget or a connection limit counts: an IPv4 address as it is, an
// IPv6 address as its /64, the block one subscriber usually gets.
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// Begin reserves a failure for a kind of secret from ip, for account (a login name; "" for
// tokens). It returns ErrTooMany, reserving nothing, when a budget is spent.
func (l *Limiter) Begin(kind Kind, ip, account string) (*Attempt, error) {
	account = strings.ToLower(strings.TrimSpace(account))
	client := ClientKey(ip)
	a := &Attempt{l: l, account: account, client: client}
	l.mu.Lock()
	defer l.mu.Unlock()
	a.at = l.now()
	hasAccount := account != "" && (kind == Mail || kind == Web)
	pair := account + "\x00" + client
	known := false
	if hasAccount {
		if t, ok := l.known.m[pair]; ok && a.at.Sub(t) < l.cfg.KnownClient {
			known = true
		}
	}
	if known {
		a.slots = []slot{{pairTable, pair}}
	} else {
		a.slots = []slot{{int(kind), client}}
		if hasAccount {
			a.slots = append(a.slots, slot{accountTable, account})
		}
	}
	for _, s := range a.slots {
		b := l.budget(s.table)
		if len(l.recent(s, b, a.at)) >= b.Failures {
			return nil, ErrTooMany
		}
	}
	for _, s := range a.slots {
		l.windows[s.table].put(s.key, append(l.windows[s.table].m[s.key], a.at), a.at, l.expired(s.table))
	}
	return a, nil
}

func (l *Limiter) budget(table int) Budget {
	if table < int(numKinds) {
		return l.cfg.PerClient[table]
	}
	return l.cfg.PerAccount
}

// recent drops the failures older than the window and returns the rest.
func (l *Limiter) recent(s slot, b Budget, now time.Time) []time.Time {
	fs := l.windows[s.table].m[s.key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= b.Window {
		i++
	}
	if i > 0 {
		fs = fs[i:]
		if len(fs) == 0 {
			delete(l.windows[s.table].m, s.key)
		} else {
			l.windows[s.table].m[s.key] = fs
		}
	}
	return fs
}

func (l *Limiter) expired(table int) func([]time.Time, time.Time) bool {
	w := l.budget(table).Window
	return func(fs []time.Time, now time.Time) bool { return len(fs) == 0 || now.Sub(fs[len(fs)-1]) >= w }
}

// Succeeded gives the reserved failure back and remembers the client address for the account.
func (a *Attempt) Succeeded() {
	a.Cancel()
	if a.account == "" {
		return
	}
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.known.put(a.account+"\x00"+a.client, now, now, func(t, now time.Time) bool { return now.Sub(t) >= l.cfg.KnownClient })
}

// Failed keeps the reserved failure.
func (a *Attempt) Failed() {}

// Cancel gives the reserved failure back without remembering anything: the secret was never
// checked (the server was busy).
func (a *Attempt) Cancel() {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range a.slots {
		fs := l.windows[s.table].m[s.key]
		for i := len(fs) - 1; i >= 0; i-- {
			if fs[i].Equal(a.at) {
				fs = append(fs[:i:i], fs[i+1:]...)
				break
			}
		}
		if len(fs) == 0 {
			delete(l.windows[s.table].m, s.key)
		} else {
			l.windows[s.table].m[s.key] = fs
		}
	}
	a.slots = nil
}

// table is a bounded map: when full, expired records go first, then an arbitrary eighth of the
// rest (a flood of addresses must not grow memory without bound; losing some records only
// forgives a little).
type table[V any] struct {
	m   map[string]V
	max int
}

func (t *table[V]) put(key string, v V, now time.Time, expired func(V, time.Time) bool) {
	if _, ok := t.m[key]; !ok && len(t.m) >= t.max {
		for k, old := range t.m {
			if expired(old, now) {
				delete(t.m, k)
			}
		}
		for k := range t.m {
			if len(t.m) < t.max-t.max/8 {
				break
			}
			delete(t.m, k)
		}
	}
	t.m[key] = v
}

// LogFailure writes the failed-login line, the same for every protocol so one fail2ban filter
// matches them all, as a typed maillog.AuthFailed event:
//
//	level=WARN msg="auth failed" proto=imap ip=192.0.2.7 user=alice@example.org
func (l *Limiter) LogFailure(log *slog.Logger, proto, ip, user string) {
	var ml *maillog.Log
	if l != nil {
		ml = l.cfg.MailLog
	}
	ml.AuthFailed(log, proto, ip, user)
}
