// Package dnstest is a fake authoritative DNS server for tests, so that no
// test ever asks a real DNS server. It must never be imported by product
// code (it imports testing); mailtest re-exports it as NewDNSZone.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"
)

// Zone is a fake authoritative DNS server for tests: it answers over UDP
// and TCP on 127.0.0.1 from records the test adds. Names it does not hold
// answer NXDOMAIN; a name it holds without records of the asked type (or
// an empty non-terminal, RFC 8020) answers NOERROR with an empty answer.
// A CNAME is followed within the zone. All methods are safe for concurrent
// use while queries are served.
type Zone struct {
	t    testing.TB
	addr string
	udp  *mdns.Server
	tcp  *mdns.Server

	mu      sync.RWMutex
	records map[string][]mdns.RR // lower-case FQDN -> records
	fail    map[string]int       // lower-case FQDN -> rcode, or DropQuery
	negTTL  uint32               // SOA TTL and minimum on negative answers; 0: no SOA
}

// DropQuery as the rcode of SetFailure makes the zone not answer at all for
// that name, so the client times out.
const DropQuery = -1

// NewZone starts a zone server on a free loopback port (the same port for
// UDP and TCP). It is shut down by t.Cleanup.
func NewZone(t testing.TB) *Zone {
	t.Helper()
	z := &Zone{t: t, records: map[string][]mdns.RR{}, fail: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dns zone: listen udp: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc, ln = nil, nil
	}
	if ln == nil {
		t.Fatal("dns zone: no free port for both udp and tcp")
	}
	z.addr = pc.LocalAddr().String()
	handler := mdns.HandlerFunc(z.serve)
	z.udp = &mdns.Server{PacketConn: pc, Handler: handler}
	z.tcp = &mdns.Server{Listener: ln, Handler: handler}
	var started sync.WaitGroup
	started.Add(2)
	z.udp.NotifyStartedFunc = started.Done
	z.tcp.NotifyStartedFunc = started.Done
	go func() { _ = z.udp.ActivateAndServe() }()
	go func() { _ = z.tcp.ActivateAndServe() }()
	started.Wait()
	t.Cleanup(func() {
		_ = z.udp.Shutdown()
		_ = z.tcp.Shutdown()
	})
	return z
}

// Addr is the "127.0.0.1:PORT" to give dns.New or --dns.
func (z *Zone) Addr() string { return z.addr }

// Add adds records written in zone-file syntax, one per argument, with a
// fully qualified owner, for example "b.test. 300 IN MX 10 mx.b.test." or
// `b.test. 300 IN TXT "v=spf1 -all"`. TXT strings longer than 255 bytes are
// split into several character strings. A bad line fails the test.
func (z *Zone) Add(rrs ...string) {
	z.t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, s := range rrs {
		rr, err := mdns.NewRR(s)
		if err != nil {
			z.t.Fatalf("dns zone: bad record %q: %v", s, err)
		}
		if rr == nil {
			z.t.Fatalf("dns zone: empty record %q", s)
		}
		name := key(rr.Header().Name)
		z.records[name] = append(z.records[name], rr)
	}
}

// AddTXT adds a TXT record holding value, split into 255-byte strings, with
// no need to quote or escape it (DKIM keys, long SPF records).
func (z *Zone) AddTXT(name, value string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	txt := &mdns.TXT{Hdr: mdns.RR_Header{Name: mdns.Fqdn(name), Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 300}}
	for len(value) > 255 {
		txt.Txt = append(txt.Txt, value[:255])
		value = value[255:]
	}
	txt.Txt = append(txt.Txt, value)
	z.records[key(name)] = append(z.records[key(name)], txt)
}

// AddPTR adds PTR records for ip (IPv4 or IPv6) pointing at names.
func (z *Zone) AddPTR(ip string, names ...string) {
	z.t.Helper()
	arpa, err := mdns.ReverseAddr(ip)
	if err != nil {
		z.t.Fatalf("dns zone: PTR for %q: %v", ip, err)
	}
	for _, n := range names {
		z.Add(arpa + " 300 IN PTR " + mdns.Fqdn(n))
	}
}

// Remove deletes the records of type qtype ("MX", "TXT", ...) at name; an
// empty qtype deletes every record at name, which then answers NXDOMAIN.
func (z *Zone) Remove(name, qtype string) {
	z.t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	k := key(name)
	if qtype == "" {
		delete(z.records, k)
		return
	}
	t, ok := mdns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		z.t.Fatalf("dns zone: unknown type %q", qtype)
	}
	kept := z.records[k][:0]
	for _, rr := range z.records[k] {
		if rr.Header().Rrtype != t {
			kept = append(kept, rr)
		}
	}
	// An empty slice keeps the name existing (NODATA), as in a real zone
	// where other types may come back.
	z.records[k] = kept
}

// SetFailure makes every query for name answer with rcode (2 SERVFAIL,
// 5 REFUSED, ...), or not answer at all with DropQuery. Rcode 0 clears it.
func (z *Zone) SetFailure(name string, rcode int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if rcode == 0 {
		delete(z.fail, key(name))
		return
	}
	z.fail[key(name)] = rcode
}

// SetNegativeTTL makes NXDOMAIN and NODATA answers carry an SOA whose TTL and
// minimum are ttl seconds, as a real zone's do, so a caching resolver may keep
// them (RFC 2308 §5). By default (0) they carry none: tests that add a record
// after asking for it see it at once.
func (z *Zone) SetNegativeTTL(ttl uint32) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.negTTL = ttl
}

// Clear removes every record and failure.
func (z *Zone) Clear() {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.records = map[string][]mdns.RR{}
	z.fail = map[string]int{}
}

func key(name string) string { return strings.ToLower(mdns.Fqdn(name)) }

func (z *Zone) serve(w mdns.ResponseWriter, req *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = mdns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	z.mu.RLock()
	rcode, failing := z.fail[key(q.Name)]
	if !failing {
		m.Rcode = z.answer(m, q)
		if z.negTTL > 0 && (m.Rcode == mdns.RcodeNameError || m.Rcode == mdns.RcodeSuccess && len(m.Answer) == 0) {
			m.Ns = append(m.Ns, &mdns.SOA{
				Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: z.negTTL},
				Ns:  "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600,
				Expire: 86400, Minttl: z.negTTL,
			})
		}
	}
	z.mu.RUnlock()
	if failing {
		if rcode == DropQuery {
			return
		}
		m.Rcode = rcode
	}
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(mdns.DefaultMsgSize, false)
		size = max(size, int(opt.UDPSize()))
	}
	if _, isUDP := w.RemoteAddr().(*net.UDPAddr); isUDP {
		// Too big for the client's buffer: cut and set TC, so it asks
		// again over TCP (RFC 1035 section 4.2.1, RFC 6891 section 7).
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// answer fills m for q and returns the rcode. The caller holds z.mu.
func (z *Zone) answer(m *mdns.Msg, q mdns.Question) int {
	name := key(q.Name)
	for range 8 {
		rrs, exists := z.records[name]
		if !exists && !z.hasDescendant(name) {
			if len(m.Answer) > 0 {
				return mdns.RcodeSuccess // dangling CNAME
			}
			return mdns.RcodeNameError
		}
		var cname *mdns.CNAME
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, mdns.Copy(rr))
			} else if c, ok := rr.(*mdns.CNAME); ok {
				cname = c
			}
		}
		if cname == nil || q.Qtype == mdns.TypeCNAME {
			return mdns.RcodeSuccess
		}
		m.Answer = append(m.Answer, mdns.Copy(cname))
		name = key(cname.Target)
	}
	return mdns.RcodeSuccess
}

func (z *Zone) hasDescendant(name string) bool {
	suffix := "." + name
	for k := range z.records {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}
