// Package queue owns outbound mail: it works the queue rows the store keeps, resolves each
// recipient domain's MX hosts, applies MTA-STS, delivers over SMTP (or through a smarthost),
// retries with backoff and returns RFC 3464 delivery status notifications to senders.
// It never speaks SQL (the store does), never listens on a port, and never records a recipient
// as delivered before the far side's 250 (nor sends one again once that 250 is recorded).
package queue

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"mailstead/delivery"
	"mailstead/maillog"
	"mailstead/store"
)

// Resolver is the part of dns.Resolver the queue needs; tests may pass any implementation.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) ([]*net.MX, error)
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Config is what a Queue needs. Store, Resolver and Hostname are required.
type Config struct {
	Store    Store
	Resolver Resolver
	Logger   *slog.Logger
	// Hostname is our name for EHLO, Reporting-MTA and bounce senders (read at each use, so a
	// changed setting takes effect without a restart).
	Hostname func() string
	// PortOffset is added to the remote SMTP port 25 and the MTA-STS HTTPS port 443, so that
	// test instances on 127.0.0.2 and 127.0.0.3 reach each other (--port-offset).
	PortOffset int
	// DevMode keeps every message on this machine: remote deliveries are deferred with a reason
	// that says so (and bounce once they expire), nothing is sent.
	DevMode bool
	// SourceIP, if set, is the local address outbound connections come from (--bind).
	SourceIP net.IP
	// RootCAs verifies remote certificates (MTA-STS, REQUIRETLS, smarthost); nil means the
	// system roots. Tests pass their own CA.
	RootCAs *x509.CertPool
	// HTTPClient fetches MTA-STS policies; nil builds one that resolves through Resolver and
	// connects to port 443+PortOffset, never following redirects (RFC 8461 §3.3).
	HTTPClient *http.Client
	// Sign, if set, DKIM-signs bounces and delay notices before they are queued to a remote
	// sender; it returns the header lines to prepend.
	Sign func(ctx context.Context, msg []byte) ([]byte, error)
	// MailLog writes the delivered, deferred and bounced lines as typed events (metrics, the
	// admin page); nil writes the lines only.
	MailLog *maillog.Log
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Queue works the outbound queue: Run schedules deliveries, Kick wakes it after new mail.
type Queue struct {
	cfg Config
	st  Store
	// deliver stores DSNs the way every other message is stored.
	deliver *delivery.Deliverer
	// owner names this queue's leases on the rows it attempts (store.QueueClaim).
	owner string
	log   *slog.Logger
	http  *http.Client
	kick  chan struct{}
	// conns keeps sessions that just delivered, for the next message to the same host.
	conns       connCache
	tlsSessions tls.ClientSessionCache

	mu        sync.Mutex
	inflight  map[int64]bool // queue entry ids being delivered now (leased by us)
	perDomain map[string]int // deliveries running per recipient domain
	running   int            // deliveries running in all
	set       settings       // see cachedSettings
	setAt     time.Time
	wg        sync.WaitGroup

	stop context.CancelFunc
	done chan struct{}
}

// New builds a queue; Run starts working it.
func New(cfg Config) (*Queue, error) {
	if cfg.Store == nil || cfg.Resolver == nil || cfg.Hostname == nil {
		return nil, errors.New("queue: Store, Resolver and Hostname are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	q := &Queue{
		cfg:         cfg,
		st:          cfg.Store,
		deliver:     delivery.New(cfg.Store, cfg.Hostname),
		log:         cfg.Logger,
		kick:        make(chan struct{}, 1),
		tlsSessions: tls.NewLRUClientSessionCache(512),
		inflight:    map[int64]bool{},
		perDomain:   map[string]int{},
		done:        make(chan struct{}),
	}
	var token [8]byte
	rand.Read(token[:])
	q.owner = hex.EncodeToString(token[:])
	q.http = cfg.HTTPClient
	if q.http == nil {
		q.http = q.newSTSClient()
	}
	return q, nil
}

// Kick wakes the scheduler, for example after new mail was queued. It never blocks.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Run works the queue until ctx ends or Close is called, then waits for running deliveries.
func (q *Queue) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	q.mu.Lock()
	q.stop = cancel
	q.mu.Unlock()
	defer close(q.done)
	// Woken by the store, not by callers: a queue row committed or made due on any path (SMTP
	// submission, DSN, CLI, admin page, API) starts its attempt at once.
	defer q.st.Subscribe(func(ev store.Event) {
		if ev.Kind == store.QueueDue {
			q.Kick()
		}
	})()
	defer q.conns.reap(true)
	defer q.wg.Wait()
	defer cancel()
	// Rows leased by an earlier process were in flight when it stopped: attempt them again now
	// (at-least-once for exactly those) rather than at their lease's end.
	if n, err := q.st.QueueReleaseLeases(ctx, q.owner); err != nil {
		q.log.Error("queue: releasing leases of an earlier run", "err", err)
	} else if n > 0 {
		q.log.Info("queue: entries in flight at the last stop are due again", "count", n)
	}
	for {
		wait := q.dispatch(ctx)
		if q.conns.reap(false) && wait > connIdle {
			wait = connIdle // come back to end parked sessions on time
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-q.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// Close stops Run and waits for deliveries in progress to record their outcome.
func (q *Queue) Close() error {
	q.mu.Lock()
	stop := q.stop
	q.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	<-q.done
	return nil
}

// settings are the queue's settings (settings.go) as the scheduler uses them.
type settings struct {
	retryInitial, retryMax, maxAge, delayNotice, timeout time.Duration
	concurrency, perDestination                          int
	smarthost, smarthostUser, smarthostPassword          string
	smarthostTLS                                         string
}

// cachedSettings returns the settings, read again only after SettingsChanged: the scheduler
// runs after every delivery and should not reread a dozen settings each time.
func (q *Queue) cachedSettings(ctx context.Context) settings {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.setAt.IsZero() {
		q.set, q.setAt = readSettings(ctx, q.st, q.log), time.Now()
	}
	return q.set
}

// SettingsChanged makes the next scheduling round read the settings again and wakes it: a
// changed retry delay or concurrency applies at once.
func (q *Queue) SettingsChanged() {
	q.mu.Lock()
	q.setAt = time.Time{}
	q.mu.Unlock()
	q.Kick()
}

// maxDueRead bounds how many due entries one scheduling round reads.
const maxDueRead = 1000

// maxRcptsPerTransaction keeps within the 100 recipients every server must take (RFC 5321 §4.5.3.1.8).
const maxRcptsPerTransaction = 100

// group is the recipients of one message at one domain: one SMTP transaction per host carries
// them all, and each gets its own result.
type group struct {
	entries []store.QueueEntry
	from    string
	domain  string
	blobID  int64
}

type groupKey struct {
	blob                 int64
	from, domain         string
	requireTLS, smtputf8 bool
}

// dispatch starts deliveries for due entries within the concurrency limits and returns how long
// to sleep before looking again. The entries it starts are leased in the store in the same
// transaction that finds them due (store.QueueClaim), so no entry is attempted twice at once.
func (q *Queue) dispatch(ctx context.Context) time.Duration {
	const idle = time.Minute
	set := q.cachedSettings(ctx)
	now := q.cfg.Now()
	// Only dispatch adds to running and perDomain, and dispatch runs in Run alone, so this
	// snapshot can only overstate what is busy while the claim runs: the limits hold.
	q.mu.Lock()
	free := set.concurrency - q.running
	perDomain := maps.Clone(q.perDomain)
	inflight := maps.Clone(q.inflight)
	q.mu.Unlock()
	if free <= 0 {
		return idle // a finishing delivery kicks us
	}
	var order []*group
	read := 0
	claimed, err := q.st.QueueClaim(ctx, store.QueueClaim{
		Owner: q.owner, Now: now, Until: now.Add(leaseFor(set)),
		// Enough to fill the free slots, not the whole backlog on every wake-up.
		Limit: min(max(20*free, 200), maxDueRead),
		Pick: func(due []store.QueueEntry) []store.QueueEntry {
			read = len(due)
			order = pickGroups(due, inflight, perDomain, free, set.perDestination)
			var picked []store.QueueEntry
			for _, g := range order {
				picked = append(picked, g.entries...)
			}
			return picked
		},
	})
	if err != nil {
		if ctx.Err() == nil {
			q.log.Error("queue: claiming due entries", "err", err)
		}
		return 10 * time.Second
	}
	if len(claimed) == 0 {
		order = nil // Pick did not run, or its groups were not leased
	}
	q.mu.Lock()
	for _, g := range order {
		q.running++
		q.perDomain[g.domain]++
		for _, e := range g.entries {
			q.inflight[e.ID] = true
		}
		q.wg.Add(1)
		go q.work(ctx, g, set)
	}
	q.mu.Unlock()
	if read == maxDueRead {
		return time.Second // more are due than we read
	}
	next, ok, err := q.st.QueueNextAttempt(ctx)
	if err != nil || !ok {
		return idle
	}
	wait := next.Sub(q.cfg.Now())
	if wait <= 0 {
		// Due entries are in flight or waiting for a free slot; a finishing delivery kicks us.
		return idle
	}
	if wait > idle {
		wait = idle
	}
	return wait + 10*time.Millisecond
}

// pickGroups groups due entries into transactions (one message, one domain, up to
// maxRcptsPerTransaction recipients) and returns those that fit in free slots and the
// per-destination limit, oldest due first. Entries still in flight here are skipped: their lease
// may have run out during a long attempt, but the attempt is not over.
func pickGroups(due []store.QueueEntry, inflight map[int64]bool, perDomain map[string]int, free, perDestination int) []*group {
	groups := map[groupKey]*group{}
	var order []*group
	for _, e := range due {
		if inflight[e.ID] {
			continue
		}
		k := groupKey{e.BlobID, e.MailFrom, e.Domain, e.RequireTLS, e.SMTPUTF8}
		g := groups[k]
		if g == nil || len(g.entries) >= maxRcptsPerTransaction {
			// A full group leaves the rest of its recipients to another transaction.
			g = &group{from: e.MailFrom, domain: e.Domain, blobID: e.BlobID}
			groups[k] = g
			order = append(order, g)
		}
		g.entries = append(g.entries, e)
	}
	var picked []*group
	for _, g := range order {
		if len(picked) >= free {
			break
		}
		if perDomain[g.domain] >= perDestination {
			continue
		}
		perDomain[g.domain]++
		picked = append(picked, g)
	}
	return picked
}

// leaseFor is how long a claimed entry stays leased: longer than any attempt takes (each SMTP
// step is bounded by the timeout setting), so that another queue never takes it over while it
// runs. Completing the attempt ends the lease early.
func leaseFor(set settings) time.Duration {
	return 10*set.timeout + time.Minute
}

func (q *Queue) work(ctx context.Context, g *group, set settings) {
	defer q.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("queue: delivery panicked", "domain", g.domain, "panic", r)
		}
		q.mu.Lock()
		q.running--
		q.perDomain[g.domain]--
		if q.perDomain[g.domain] == 0 {
			delete(q.perDomain, g.domain)
		}
		for _, e := range g.entries {
			delete(q.inflight, e.ID)
		}
		q.mu.Unlock()
		q.Kick()
	}()
	q.deliverGroup(ctx, g, set)
}

// backoff is the wait after the n-th failed attempt (n from 1): initial, doubled each time, capped
// at max.
func backoff(n int, initial, max time.Duration) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
