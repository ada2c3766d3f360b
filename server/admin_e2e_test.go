package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"mailstead/mailauth"
	"mailstead/mailtest"
	"mailstead/server"
)

// browser is an HTTP client that accepts the self-signed certificate, keeps cookies, does not
// follow redirects and sends same-origin POSTs the way a browser marks them.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(data)
}

// The admin pages over real HTTPS with the certificate manager's certificate, and port 80 with
// autoconfig and the redirect.
func TestAdminPagesOverHTTPS(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	ctx := context.Background()
	if err := srv.Store().SetAdmin(ctx, "alice@example.test", true); err != nil {
		t.Fatal(err)
	}
	base := "https://" + srv.Opts.Addr(443)

	conn, err := tls.Dial("tcp", srv.Opts.Addr(443), &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	st := conn.ConnectionState()
	conn.Close()
	if st.NegotiatedProtocol != "h2" || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].VerifyHostname("mail.example.test") != nil {
		t.Errorf("TLS on 443: protocol %q, certificate %v", st.NegotiatedProtocol, st.PeerCertificates[0].DNSNames)
	}

	b := newBrowser(t)
	resp, _ := b.do("GET", base+"/admin/dns", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("admin page without session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.do("POST", base+"/login", url.Values{"address": {"alice@example.test"}, "password": {"alice-password"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	resp, body := b.do("GET", base+"/admin/dns?domain=example.test", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("DNS page: %d", resp.StatusCode)
	}
	// The DKIM keys the queue made for the domain are the ones on the page.
	keys, _ := server.Execute(ctx, srv.Store(), server.Request{Command: "dns-records", Args: []string{"example.test"}})
	sel := regexp.MustCompile(`(\w+)\._domainkey\.example\.test\.`).FindAllStringSubmatch(keys, -1)
	if len(sel) < 2 {
		t.Fatalf("dns-records lists %d DKIM keys:\n%s", len(sel), keys)
	}
	for _, s := range sel {
		if !strings.Contains(body, s[0]) {
			t.Errorf("DNS page lacks DKIM record %s", s[0])
		}
	}
	if strings.Contains(body, "No DKIM keys exist") {
		t.Error("DNS page says the domain has no DKIM keys")
	}
	// Submissions in the SRV records is the port the server listens on.
	_, port465, _ := net.SplitHostPort(srv.Opts.Addr(465))
	if !strings.Contains(body, "0 1 "+port465+" mail.example.test.") {
		t.Errorf("DNS page lacks _submissions SRV with port %s", port465)
	}

	// Port 80: autoconfig in clear, everything else to HTTPS.
	resp, body = b.do("GET", "http://"+srv.Opts.Addr(80)+"/mail/config-v1.1.xml?emailaddress=alice%40example.test", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("autoconfig on port 80: %d", resp.StatusCode)
	}
	var cfg struct {
		Provider struct {
			Incoming []struct {
				Type       string `xml:"type,attr"`
				Port       int    `xml:"port"`
				SocketType string `xml:"socketType"`
			} `xml:"incomingServer"`
			Outgoing []struct {
				Port       int    `xml:"port"`
				SocketType string `xml:"socketType"`
			} `xml:"outgoingServer"`
		} `xml:"emailProvider"`
	}
	if err := xml.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatal(err)
	}
	// Every advertised port is the one the server listens on (when that service is running).
	check := func(what string, advertised, std int) {
		if advertised != std+srv.Opts.PortOffset {
			t.Errorf("%s advertised on %d, want %d", what, advertised, std+srv.Opts.PortOffset)
		}
		if a := srv.Addr(std); a != "" && !strings.HasSuffix(a, ":"+strconv.Itoa(advertised)) {
			t.Errorf("%s advertised on %d but listening on %s", what, advertised, a)
		}
	}
	check("IMAPS", cfg.Provider.Incoming[0].Port, server.PortIMAPS)
	check("IMAP", cfg.Provider.Incoming[1].Port, server.PortIMAP)
	check("POP3S", cfg.Provider.Incoming[2].Port, server.PortPOP3S)
	check("POP3", cfg.Provider.Incoming[3].Port, server.PortPOP3)
	check("submissions", cfg.Provider.Outgoing[0].Port, server.PortSubmissions)
	check("submission", cfg.Provider.Outgoing[1].Port, server.PortSubmission)
	if srv.Addr(server.PortSubmissions) == "" {
		t.Error("submissions (465) is not listening, yet autoconfig advertises it")
	}
	resp, _ = b.do("GET", "http://"+srv.Opts.Addr(80)+"/admin/", nil)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("port 80 /admin/: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// MTA-STS over HTTPS, by Host.
	req, _ := http.NewRequest("GET", base+"/.well-known/mta-sts.txt", nil)
	req.Host = "mta-sts.example.test"
	r2, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 200 || !bytes.Contains(pol, []byte("mx: mail.example.test")) {
		t.Errorf("MTA-STS policy: %d %q", r2.StatusCode, pol)
	}
}

var setupURL = regexp.MustCompile(`https://\S+/setup\?token=\S+`)

// startEmpty starts a server on an empty data directory, as a first `serve` does, and returns
// the setup URL it printed.
func startEmpty(t *testing.T, zone *mailtest.DNSZone, settings map[string]string) (*server.Server, string, mailtest.Options) {
	t.Helper()
	opts := mailtest.Options{IP: mailtest.RandomLoopbackIP(), PortOffset: mailtest.DefaultPortOffset, DNS: zone.Addr(), Dir: t.TempDir()}
	if len(settings) > 0 {
		st, err := server.OpenStore(opts.Dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range settings {
			if err := st.SetSetting(context.Background(), k, v); err != nil {
				t.Fatal(err)
			}
		}
		st.Close()
	}
	var out bytes.Buffer
	srv, err := server.New(server.Options{DataDir: opts.Dir, Bind: opts.IP, PortOffset: opts.PortOffset, DNS: opts.DNS,
		Out: &out, ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	u := setupURL.FindString(out.String())
	if u == "" {
		t.Fatalf("no setup URL printed: %q", out.String())
	}
	return srv, u, opts
}

// A first start prints a setup URL; the wizard behind it sets up hostname, domain and admin once.
func TestSetupWizardFromPrintedURL(t *testing.T) {
	zone := mailtest.NewDNSZone(t)
	srv, u, opts := startEmpty(t, zone, map[string]string{"acme.directory": "https://127.0.0.1:1/directory"})
	pu, err := url.Parse(u)
	if err != nil || pu.Host != opts.Addr(443) {
		t.Fatalf("setup URL %q does not point at the HTTPS listener %s", u, opts.Addr(443))
	}
	b := newBrowser(t)
	resp, body := b.do("GET", u, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `name="domain"`) {
		t.Fatalf("setup page: %d", resp.StatusCode)
	}
	form := url.Values{"token": {pu.Query().Get("token")}, "hostname": {"mail.first.test"}, "domain": {"first.test"},
		"admin": {"me@first.test"}, "password": {"correct horse battery"}, "password2": {"correct horse battery"}}
	resp, _ = b.do("POST", "https://"+pu.Host+"/setup", form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("setup: %d", resp.StatusCode)
	}
	ctx := context.Background()
	if a, err := srv.Store().Authenticate(ctx, "me@first.test", "correct horse battery"); err != nil || !a.IsAdmin {
		t.Errorf("admin account: %+v %v", a, err)
	}
	resp, body = b.do("GET", "https://"+pu.Host+resp.Header.Get("Location"), nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "_domainkey.first.test.") {
		t.Errorf("DNS page after setup lacks DKIM records: %d", resp.StatusCode)
	}
	// The mail greetings use the new hostname at once: no restart.
	if g := greeting(t, opts.Addr(25)); !strings.Contains(g, "mail.first.test") {
		t.Errorf("SMTP greeting after setup: %q", g)
	}
	if resp, _ := newBrowser(t).do("GET", u, nil); resp.StatusCode != http.StatusGone {
		t.Errorf("used setup link: %d, want 410", resp.StatusCode)
	}
	if resp, _ := newBrowser(t).do("POST", "https://"+pu.Host+"/setup", form); resp.StatusCode != http.StatusGone {
		t.Errorf("used setup token posted again: %d, want 410", resp.StatusCode)
	}
}

// `mailstead dns-records` prints a zone file that parses.
func TestDNSRecordsZoneFile(t *testing.T) {
	// No server runs: the command works on the data directory, and with the default ACME
	// directory (Let's Encrypt, hence a CAA record) nothing can order a certificate.
	opts := mailtest.Prepare(t, mailtest.Options{Settings: map[string]string{"admin.public_ips": "192.0.2.25", "acme.directory": "production"}})
	st, err := server.OpenStore(opts.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out, err := server.Execute(context.Background(), st, server.Request{Command: "dns-records"})
	if err != nil {
		t.Fatal(err)
	}
	p := mdns.NewZoneParser(strings.NewReader(out), "", "")
	types := map[string]int{}
	for rr, ok := p.Next(); ok; rr, ok = p.Next() {
		types[mdns.TypeToString[rr.Header().Rrtype]]++
	}
	if err := p.Err(); err != nil {
		t.Fatalf("not a zone file: %v\n%s", err, out)
	}
	if types["MX"] != 1 || types["TXT"] < 3 {
		t.Errorf("records %v", types)
	}
	if !strings.Contains(out, "_mta-sts.") {
		t.Errorf("dns-records lacks the MTA-STS record:\n%s", out)
	}
	for typ, n := range map[string]int{"A": 1, "PTR": 1, "SRV": 6, "CNAME": 3, "CAA": 1} {
		if types[typ] != n {
			t.Errorf("%d %s records, want %d", types[typ], typ, n)
		}
	}
}

// Reading records never makes keys: dns-records on a domain added without them (by a tool
// writing the store directly) lists no DKIM record and leaves the store without keys.
func TestDNSRecordsMakesNoKeys(t *testing.T) {
	opts := mailtest.Prepare(t, mailtest.Options{Settings: map[string]string{"admin.public_ips": "192.0.2.25"}})
	st, err := server.OpenStore(opts.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.AddDomain(ctx, "nokeys.test"); err != nil {
		t.Fatal(err)
	}
	out, err := server.Execute(ctx, st, server.Request{Command: "dns-records", Args: []string{"nokeys.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "nokeys.test. 3600 IN MX") {
		t.Fatalf("dns-records printed no records for the domain:\n%s", out)
	}
	if strings.Contains(out, "_domainkey.nokeys.test") {
		t.Errorf("dns-records lists DKIM records for a domain without keys:\n%s", out)
	}
	if keys, err := st.KVKeys(ctx, mailauth.KeyPrefix("nokeys.test")); err != nil || len(keys) != 0 {
		t.Fatalf("keys after dns-records: %v, %v", keys, err)
	}
}
