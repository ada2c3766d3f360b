package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mailstead/maillog"
)

// PortMetrics is the standard port of the Prometheus page (http://127.0.0.1:9025/metrics);
// --port-offset applies to it like to every other port, and the metrics.listen setting moves it.
const PortMetrics = 9025

// Metrics are counted without reaching into the services: mail events arrive typed from the
// maillog the services write their stable lines with (MailEvent), failed TLS handshakes
// included. Gauges (queue, store size, certificate expiry) are read from the store and the
// certificate manager at scrape time. Each server has its own registry: no global state.
type metrics struct {
	s          *Server
	reg        *prometheus.Registry
	conns      *prometheus.CounterVec
	refused    *prometheus.CounterVec
	received   *prometheus.CounterVec
	rejected   prometheus.Counter
	sent       prometheus.Counter
	bounced    prometheus.Counter
	deferred   prometheus.Counter
	authFailed *prometheus.CounterVec
	handshakes *prometheus.CounterVec
	latency    prometheus.Histogram
}

var serviceNames = map[int]string{
	PortSMTP: "smtp", PortSubmission: "submission", PortSubmissions: "submissions", PortIMAP: "imap",
	PortIMAPS: "imaps", PortPOP3: "pop3", PortPOP3S: "pop3s", PortHTTP: "http", PortHTTPS: "https",
}

func newMetrics(s *Server) *metrics {
	m := &metrics{s: s, reg: prometheus.NewRegistry()}
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailstead_connections_total",
		Help: "Connections accepted, by service."}, []string{"service"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailstead_connections_refused_total",
		Help: "Connections refused because a limit was reached, by service and limit: total or client " +
			"(every listener's, closed at once), protocol (the service's own per-client limit, refused politely)."},
		[]string{"service", "limit"})
	m.received = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailstead_messages_received_total",
		Help: "Messages accepted and committed: via=mx from other servers, via=submission from own users."}, []string{"via"})
	m.rejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailstead_messages_rejected_total",
		Help: "Messages refused after DATA (policy, authentication checks, sender not owned)."})
	m.sent = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailstead_messages_sent_total",
		Help: "Outbound deliveries accepted by the remote server, per recipient."})
	m.bounced = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailstead_messages_bounced_total",
		Help: "Outbound recipients given up on (a bounce went to the sender)."})
	m.deferred = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailstead_messages_deferred_total",
		Help: "Outbound delivery attempts that failed temporarily and will be retried."})
	m.authFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailstead_auth_failures_total",
		Help: "Failed logins, by protocol (the same events as the \"auth failed\" log lines)."}, []string{"proto"})
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailstead_tls_handshake_failures_total",
		Help: "Failed TLS handshakes (implicit TLS and STARTTLS), by protocol."},
		[]string{"proto"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailstead_delivery_latency_seconds",
		Help:    "Time from queueing to delivery at the remote server, for delivered outbound recipients.",
		Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 120 * 3600}})
	for _, v := range []string{"mx", "submission"} {
		m.received.WithLabelValues(v) // present at zero, so rate() works from the first scrape
	}
	m.reg.MustRegister(m.conns, m.refused, m.received, m.rejected, m.sent, m.bounced, m.deferred, m.authFailed, m.handshakes, m.latency,
		gaugeCollector{m}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// startMetrics makes the counters, which the typed mail events (maillog) feed, and serves
// /metrics. A metrics page that cannot listen is logged, not fatal: mail matters more than graphs.
func (s *Server) startMetrics(ctx context.Context) {
	m := newMetrics(s)
	s.metrics = m

	addr, err := s.metricsAddr(ctx)
	if err != nil {
		s.log.Error("metrics", "err", err)
		return
	}
	if addr == "" {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.log.Error("metrics page not served", "addr", addr, "err", err)
		return
	}
	s.mu.Lock()
	s.addrs[PortMetrics] = l.Addr().String()
	s.mu.Unlock()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.serve("metrics", l, func(l net.Listener) error {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, srv.Shutdown)
}

// metricsAddr is where /metrics listens: the metrics.listen setting ("off" for nowhere) with the
// port offset added. On a loopback --bind address other than 127.0.0.1 (tests, several instances
// on one machine) the default host follows it, so instances do not collide.
func (s *Server) metricsAddr(ctx context.Context) (string, error) {
	v, err := SettingMetricsListen.String(ctx, s.store)
	if err != nil || v == "off" || v == "" {
		return "", err
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", err
	}
	p += s.opts.PortOffset
	if s.opts.EphemeralPorts {
		p = 0
	}
	if ip := net.ParseIP(s.opts.Bind); host == "127.0.0.1" && ip != nil && ip.IsLoopback() {
		host = s.opts.Bind
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// countAccepts counts the connections a service's listener accepts. The connections themselves
// pass through untouched.
func (m *metrics) countAccepts(stdPort int, l net.Listener) net.Listener {
	if m == nil {
		return l
	}
	return countingListener{Listener: l, c: m.conns.WithLabelValues(serviceName(stdPort))}
}

func serviceName(stdPort int) string {
	if name := serviceNames[stdPort]; name != "" {
		return name
	}
	return strconv.Itoa(stdPort)
}

// countRefusals returns the counter connlimit calls for each connection it refuses.
func (m *metrics) countRefusals(service string) func(limit string) {
	if m == nil {
		return nil
	}
	return func(limit string) { m.refused.WithLabelValues(service, limit).Inc() }
}

type countingListener struct {
	net.Listener
	c prometheus.Counter
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.c.Inc()
	}
	return c, err
}

// MailEvent counts one typed mail event (maillog). The delivery latency comes with the event
// (the entry's queue time), so no database query runs on the queue's goroutine.
func (m *metrics) MailEvent(ev maillog.Event) {
	switch ev.Kind {
	case maillog.Received:
		m.received.WithLabelValues("mx").Inc()
	case maillog.Submitted:
		m.received.WithLabelValues("submission").Inc()
	case maillog.Rejected:
		m.rejected.Inc()
	case maillog.AuthFailed:
		m.authFailed.WithLabelValues(ev.Proto).Inc()
	case maillog.HandshakeFailed:
		m.handshakes.WithLabelValues(ev.Proto).Inc()
	case maillog.Delivered:
		m.sent.Inc()
		if !ev.Queued.IsZero() {
			m.latency.Observe(ev.At.Sub(ev.Queued).Seconds())
		}
	case maillog.Bounced:
		m.bounced.Inc()
	case maillog.Deferred:
		m.deferred.Inc()
	}
}

// gaugeCollector reads the gauges at scrape time.
type gaugeCollector struct{ m *metrics }

var (
	descQueueSize   = prometheus.NewDesc("mailstead_queue_messages", "Outbound recipients waiting in the queue.", nil, nil)
	descQueueOldest = prometheus.NewDesc("mailstead_queue_oldest_age_seconds", "Age of the oldest queue entry (0 when the queue is empty).", nil, nil)
	descStoreBytes  = prometheus.NewDesc("mailstead_store_bytes", "Size of the database on disk, WAL included.", nil, nil)
	descCertExpiry  = prometheus.NewDesc("mailstead_certificate_expiry_timestamp_seconds",
		"When the certificate served for a name expires (unix time), by name and source.", []string{"name", "source"}, nil)
)

func (g gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueueSize
	ch <- descQueueOldest
	ch <- descStoreBytes
	ch <- descCertExpiry
}

func (g gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	s := g.m.s
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if entries, err := s.store.QueueList(ctx); err == nil {
		var oldest time.Time
		for _, e := range entries {
			if oldest.IsZero() || e.Created.Before(oldest) {
				oldest = e.Created
			}
		}
		age := 0.0
		if !oldest.IsZero() {
			age = time.Since(oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(descQueueSize, prometheus.GaugeValue, float64(len(entries)))
		ch <- prometheus.MustNewConstMetric(descQueueOldest, prometheus.GaugeValue, age)
	}
	var size int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(s.store.Path() + suffix); err == nil {
			size += fi.Size()
		}
	}
	ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(size))
	if s.certs != nil {
		st := s.certs.Status()
		seen := map[string]bool{}
		for _, h := range st.Hosts {
			if !h.NotAfter.IsZero() {
				seen[h.Name] = true
				ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(h.NotAfter.Unix()), h.Name, string(h.Source))
			}
		}
		// The hostname always has a certificate: the self-signed fallback until one is issued.
		if !seen[st.Hostname] && !st.NotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(st.NotAfter.Unix()), st.Hostname, string(st.Source))
		}
	}
}
