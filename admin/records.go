package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Record is one DNS record the operator publishes, in zone-file syntax, with the reason it is
// needed. Names are fully qualified (trailing dot).
type Record struct {
	Group  string // "Server", "Receiving", "Sending", "Policy", "Clients"
	Name   string
	TTL    int
	Type   string // MX, A, AAAA, TXT, CNAME, SRV, CAA, PTR
	Value  string // RDATA in zone-file syntax (TXT quoted and split)
	Reason string
	Where  string // who publishes it, when it is not the domain's own zone ("your VPS provider")

	check checkSpec
}

// FormValue is the value as a DNS provider's web form wants it: a TXT record as the one string
// it stands for (no quotes, no 255-byte chunks: providers store what they are given, quotes and
// all, and a DKIM key in two quoted chunks then fails), an MX record's host without its
// priority (which has a field of its own, Priority).
func (r Record) FormValue() string {
	switch r.Type {
	case "TXT":
		return unquoteTXT(r.Value)
	case "MX":
		if _, host, ok := strings.Cut(r.Value, " "); ok {
			return strings.TrimSuffix(host, ".")
		}
	}
	return r.Value
}

// Priority is an MX record's preference, "" for other types.
func (r Record) Priority() string {
	if r.Type != "MX" {
		return ""
	}
	p, _, _ := strings.Cut(r.Value, " ")
	return p
}

// unquoteTXT joins the quoted character-strings of a TXT record's zone-file value.
func unquoteTXT(v string) string {
	var b strings.Builder
	in, esc := false, false
	for _, c := range v {
		switch {
		case esc:
			b.WriteRune(c)
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case in:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Zone is the record as one zone-file line.
func (r Record) Zone() string {
	return fmt.Sprintf("%s %d IN %s %s", r.Name, r.TTL, r.Type, r.Value)
}

// checkSpec says how a live check compares what is published with the record.
type checkSpec struct {
	kind   string // "mx", "ip", "txt", "cnamehost", "srv", "ptr", "caa", "none"
	host   string // expected host (no trailing dot) for mx/cnamehost/srv/ptr; CA domain for caa
	ip     net.IP // expected address for ip/ptr
	port   int    // expected SRV port
	prefix string // TXT: the record of interest starts with this tag (case-insensitive)
	want   string // TXT: the expected text, whitespace-normalised
	ok     func(found string) bool
	// weaker says why a record that passes ok still protects less than the one suggested ("" if
	// it does not).
	weaker func(found string) string
}

// Ports are the TCP ports clients connect to (the standard ones, plus --port-offset in tests).
type Ports struct {
	SMTP, Submission, Submissions, IMAP, IMAPS, POP3, POP3S, HTTPS int
}

// StandardPorts are the well-known ports.
var StandardPorts = Ports{SMTP: 25, Submission: 587, Submissions: 465, IMAP: 143, IMAPS: 993, POP3: 110, POP3S: 995, HTTPS: 443}

// Offset adds n to every port (the server's --port-offset).
func (p Ports) Offset(n int) Ports {
	return Ports{p.SMTP + n, p.Submission + n, p.Submissions + n, p.IMAP + n, p.IMAPS + n, p.POP3 + n, p.POP3S + n, p.HTTPS + n}
}

// DKIMKey is a domain's DKIM public key as published: selector and TXT value.
type DKIMKey struct {
	Selector string
	TXT      string // "v=DKIM1; k=rsa; p=..."
}

// RecordInput is everything the records of a domain depend on.
type RecordInput struct {
	Hostname    string   // the mail server's name (MX target)
	Domain      string   // the mail domain
	IPs         []net.IP // this server's public addresses
	DKIM        []DKIMKey
	Ports       Ports
	MTASTSMode  string // "testing" or "enforce"
	CAAIssuer   string // "letsencrypt.org"; empty: no CAA record
	ReportEmail string // DMARC and TLS-RPT reports go here; empty: postmaster@Domain
}

func fqdn(name string) string { return strings.TrimSuffix(name, ".") + "." }

// MTASTSPolicy is the policy file served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt
// (RFC 8461 §3.2): the mode, our one MX host, and a week's max_age.
func MTASTSPolicy(hostname, mode string) string {
	if mode != "enforce" && mode != "none" {
		mode = "testing"
	}
	return "version: STSv1\r\nmode: " + mode + "\r\nmx: " + strings.TrimSuffix(hostname, ".") + "\r\nmax_age: 604800\r\n"
}

// MTASTSID is the policy id published in the _mta-sts TXT record (RFC 8461 §3.1: 1–32
// alphanumerics). It is derived from the policy, so it changes exactly when the policy does and
// senders fetch the new one.
func MTASTSID(policy string) string {
	h := sha256.Sum256([]byte(policy))
	return hex.EncodeToString(h[:])[:20]
}

// ServerRecords are the records of the mail hostname itself: its addresses, and the PTR records
// the VPS provider sets, which receivers compare with the EHLO name.
func ServerRecords(in RecordInput) []Record {
	host := strings.TrimSuffix(in.Hostname, ".")
	var out []Record
	for _, ip := range in.IPs {
		typ := "A"
		if ip.To4() == nil {
			typ = "AAAA"
		}
		out = append(out, Record{Group: "Server", Name: fqdn(host), TTL: 3600, Type: typ, Value: ip.String(),
			Reason: "Clients and other mail servers find this server by its name " + host + ".",
			check:  checkSpec{kind: "ip", ip: ip}})
	}
	for _, ip := range in.IPs {
		rev, err := reverseName(ip)
		if err != nil {
			continue
		}
		out = append(out, Record{Group: "Server", Name: rev, TTL: 3600, Type: "PTR", Value: fqdn(host),
			Reason: "Receivers check that " + ip.String() + " names itself " + host + " (forward-confirmed reverse DNS); many refuse mail otherwise.",
			Where:  "set at your VPS or hosting provider as reverse DNS, not in your domain's zone",
			check:  checkSpec{kind: "ptr", host: host, ip: ip}})
	}
	return out
}

func reverseName(ip net.IP) (string, error) {
	if v4 := ip.To4(); v4 != nil {
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", v4[3], v4[2], v4[1], v4[0]), nil
	}
	if len(ip) != net.IPv6len {
		return "", fmt.Errorf("bad address %v", ip)
	}
	const hexdigits = "0123456789abcdef"
	var b strings.Builder
	for i := len(ip) - 1; i >= 0; i-- {
		b.WriteByte(hexdigits[ip[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hexdigits[ip[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String(), nil
}

// DomainRecords are the records one mail domain needs, in the order the wizard shows them.
func DomainRecords(in RecordInput) []Record {
	d := strings.TrimSuffix(in.Domain, ".")
	host := strings.TrimSuffix(in.Hostname, ".")
	report := in.ReportEmail
	if report == "" {
		report = "postmaster@" + d
	}
	var out []Record
	add := func(r Record) {
		if r.TTL == 0 {
			r.TTL = 3600
		}
		out = append(out, r)
	}

	add(Record{Group: "Receiving", Name: fqdn(d), Type: "MX", Value: "10 " + fqdn(host),
		Reason: "Mail for @" + d + " is delivered to " + host + " (RFC 5321 §5.1).",
		check:  checkSpec{kind: "mx", host: host}})

	spf := "v=spf1 mx -all"
	add(Record{Group: "Sending", Name: fqdn(d), Type: "TXT", Value: quoteTXT(spf),
		Reason: "SPF: only this domain's MX, this server, may send as @" + d + "; receivers reject the rest (RFC 7208).",
		check: checkSpec{kind: "txt", prefix: "v=spf1", want: spf, ok: func(found string) bool {
			f := " " + strings.ToLower(found) + " "
			return strings.Contains(f, " mx ") || strings.Contains(f, " +mx ") || strings.Contains(f, " a:"+host+" ") ||
				ipInSPF(f, in.IPs)
		}, weaker: spfWeaker}})
	for _, k := range in.DKIM {
		add(Record{Group: "Sending", Name: k.Selector + "._domainkey." + fqdn(d), Type: "TXT", Value: quoteTXT(k.TXT),
			Reason: "DKIM key " + k.Selector + ": receivers verify the signature this server puts on every message from @" + d + " (RFC 6376" + ifEd(k.TXT, ", RFC 8463") + ").",
			check: checkSpec{kind: "txt", prefix: "v=dkim1", want: k.TXT, ok: func(found string) bool {
				return dkimTag(found, "p") == dkimTag(k.TXT, "p") && dkimTag(found, "p") != ""
			}}})
	}
	dmarc := "v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:" + report
	add(Record{Group: "Sending", Name: "_dmarc." + fqdn(d), Type: "TXT", Value: quoteTXT(dmarc),
		Reason: "DMARC: mail claiming to be from @" + d + " that fails SPF and DKIM goes to spam; daily reports go to " + report + " (RFC 7489).",
		check: checkSpec{kind: "txt", prefix: "v=dmarc1", want: dmarc, ok: func(found string) bool {
			p := dkimTag(found, "p")
			return p == "quarantine" || p == "reject" || p == "none"
		}, weaker: func(found string) string {
			if strings.EqualFold(dkimTag(found, "p"), "none") {
				return "p=none only asks for reports: mail failing SPF and DKIM is still delivered as if it were from @" + d
			}
			return ""
		}}})

	policy := MTASTSPolicy(host, in.MTASTSMode)
	sts := "v=STSv1; id=" + MTASTSID(policy)
	add(Record{Group: "Policy", Name: "_mta-sts." + fqdn(d), Type: "TXT", Value: quoteTXT(sts),
		Reason: "MTA-STS: senders must use TLS with a valid certificate to reach " + host + "; the id changes when the policy does (RFC 8461).",
		check: checkSpec{kind: "txt", prefix: "v=stsv1", want: sts, ok: func(found string) bool {
			return dkimTag(found, "id") == MTASTSID(policy)
		}}})
	add(Record{Group: "Policy", Name: "mta-sts." + fqdn(d), Type: "CNAME", Value: fqdn(host),
		Reason: "This server serves the MTA-STS policy at https://mta-sts." + d + "/.well-known/mta-sts.txt.",
		check:  checkSpec{kind: "cnamehost", host: host}})
	tlsrpt := "v=TLSRPTv1; rua=mailto:" + report
	add(Record{Group: "Policy", Name: "_smtp._tls." + fqdn(d), Type: "TXT", Value: quoteTXT(tlsrpt),
		Reason: "TLS reporting: senders tell " + report + " when TLS to this server fails (RFC 8460).",
		check: checkSpec{kind: "txt", prefix: "v=tlsrptv1", want: tlsrpt, ok: func(found string) bool {
			return strings.Contains(strings.ToLower(found), "rua=")
		}}})
	if in.CAAIssuer != "" {
		add(Record{Group: "Policy", Name: fqdn(d), Type: "CAA", Value: `0 issue "` + in.CAAIssuer + `"`,
			Reason: "Only " + in.CAAIssuer + " may issue certificates for " + d + " and its names (RFC 8659).",
			check:  checkSpec{kind: "caa", host: in.CAAIssuer}})
	}

	// RFC 6186 §3 with RFC 8314 §5.1: implicit TLS is preferred (lower priority value); IMAP is
	// preferred over POP3 (RFC 6186 §3.4).
	srv := []struct {
		service  string
		prio     int
		port     int
		protocol string
	}{
		{"_submissions", 0, in.Ports.Submissions, "sending with implicit TLS (RFC 8314)"},
		{"_submission", 10, in.Ports.Submission, "sending with STARTTLS"},
		{"_imaps", 0, in.Ports.IMAPS, "IMAP with implicit TLS"},
		{"_imap", 10, in.Ports.IMAP, "IMAP with STARTTLS"},
		{"_pop3s", 20, in.Ports.POP3S, "POP3 with implicit TLS"},
		{"_pop3", 30, in.Ports.POP3, "POP3 with STARTTLS"},
	}
	for _, s := range srv {
		add(Record{Group: "Clients", Name: s.service + "._tcp." + fqdn(d), Type: "SRV",
			Value:  fmt.Sprintf("%d 1 %d %s", s.prio, s.port, fqdn(host)),
			Reason: "Mail apps find " + s.protocol + " at " + host + " port " + strconv.Itoa(s.port) + " (RFC 6186).",
			check:  checkSpec{kind: "srv", host: host, port: s.port}})
	}
	add(Record{Group: "Clients", Name: "autoconfig." + fqdn(d), Type: "CNAME", Value: fqdn(host),
		Reason: "Thunderbird and others fetch their settings from http://autoconfig." + d + "/mail/config-v1.1.xml.",
		check:  checkSpec{kind: "cnamehost", host: host}})
	add(Record{Group: "Clients", Name: "autodiscover." + fqdn(d), Type: "CNAME", Value: fqdn(host),
		Reason: "Outlook fetches its settings from https://autodiscover." + d + "/autodiscover/autodiscover.xml.",
		check:  checkSpec{kind: "cnamehost", host: host}})
	return out
}

func ifEd(txt, s string) string {
	if strings.Contains(txt, "k=ed25519") {
		return s
	}
	return ""
}

func ipInSPF(spf string, ips []net.IP) bool {
	for _, ip := range ips {
		if strings.Contains(spf, " ip4:"+ip.String()+" ") || strings.Contains(spf, " ip6:"+ip.String()+" ") {
			return true
		}
	}
	return false
}

// dkimTag returns the value of tag in a "k=v; k=v" record (DKIM, DMARC, MTA-STS share the
// syntax), without whitespace; "" when absent.
func dkimTag(rec, tag string) string {
	for _, part := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), tag) {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

// spfWeaker: an SPF record that lets mail through that "-all" would refuse.
func spfWeaker(found string) string {
	f := " " + strings.ToLower(found) + " "
	switch {
	case strings.Contains(f, " +all ") || strings.Contains(f, " all "):
		return "+all lets any server on the internet send as this domain"
	case strings.Contains(f, " ?all "):
		return "?all says nothing about other servers, so forged mail is not refused"
	case strings.Contains(f, " ~all "):
		return "~all (softfail) only marks mail from other servers, receivers still accept it"
	}
	return ""
}

// quoteTXT quotes a TXT value for a zone file, split into character strings of at most 255 bytes
// (RFC 1035 §3.3.14); receivers join them back (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
func quoteTXT(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	return strings.Join(parts, " ")
}

// ZoneFile renders records as a zone file with each reason as a comment.
func ZoneFile(title string, records []Record) string {
	var b strings.Builder
	if title != "" {
		fmt.Fprintf(&b, "; %s\n", title)
	}
	group := ""
	for _, r := range records {
		if r.Group != group {
			group = r.Group
			fmt.Fprintf(&b, "\n; --- %s ---\n", group)
		}
		fmt.Fprintf(&b, "; %s\n", r.Reason)
		if r.Where != "" {
			fmt.Fprintf(&b, "; (%s)\n", r.Where)
		}
		fmt.Fprintln(&b, r.Zone())
	}
	return b.String()
}
