package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"mailstead/mailtest/storetest"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"mailstead/dns"
	"mailstead/dns/dnstest"
	"mailstead/manage"
	"mailstead/queue"
	"mailstead/settings"
	"mailstead/store"
)

// env is an admin handler on a real store and a fake DNS zone, served over real TLS on loopback.
type env struct {
	t    *testing.T
	st   *store.Store
	zone *dnstest.Zone
	adm  *Admin
	srv  *httptest.Server
	ip   net.IP
}

var testPorts = StandardPorts.Offset(20000)

func newEnv(t *testing.T) *env { return newEnvWith(t, true) }

// newEmptyEnv is an env on a data directory that has not been set up: no domain, no account.
func newEmptyEnv(t *testing.T) *env { return newEnvWith(t, false) }

func newEnvWith(t *testing.T, populated bool) *env {
	t.Helper()
	st := storetest.Open(t)
	ctx := context.Background()
	must(t, st.SetSetting(ctx, "admin.port25_probe", "127.0.0.1:1")) // never a real host
	if populated {
		must(t, st.SetSetting(ctx, "hostname", "mail.example.test"))
		if _, err := st.AddDomain(ctx, "example.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddAccount(ctx, "admin@example.test", "admin-password", true); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddAccount(ctx, "user@example.test", "user-password", false); err != nil {
			t.Fatal(err)
		}
	}
	z := dnstest.NewZone(t)
	e := &env{t: t, st: st, zone: z, ip: net.ParseIP("127.0.0.7")}
	keys := fakeDKIM{}
	adm, err := New(Config{
		Store: st, Resolver: dns.New(z.Addr()), Ports: testPorts,
		FallbackIPs: func() []net.IP { return []net.IP{e.ip} },
		DKIMKeys:    keys.list(st),
		Ops:         manage.New(manage.Config{Store: st, DKIM: keys, Settings: testRegistry(t)}),
		Certs:       func() CertStatus { return CertStatus{Hostname: "mail.example.test", Source: "self-signed"} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if populated {
		must(t, adm.ops.EnsureDKIM(ctx, "example.test"))
	}
	e.adm = adm
	e.srv = httptest.NewTLSServer(adm.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// testRegistry holds the settings the pages' tests set (the server's has every package's).
func testRegistry(t *testing.T) *settings.Registry {
	reg, err := settings.NewRegistry(manage.Settings(), Settings(), queue.Settings())
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// fakeDKIM makes stand-in keys (fixed TXT values) so the pages' DKIM records can be checked.
type fakeDKIM struct{}

func (fakeDKIM) NewKeys(d string) (map[string][]byte, error) {
	return map[string][]byte{"dkim/" + d + "/r1": []byte("rsa"), "dkim/" + d + "/e1": []byte("ed25519")}, nil
}

func (fakeDKIM) KeyPrefix(d string) string { return "dkim/" + d + "/" }

func (k fakeDKIM) list(st *store.Store) func(ctx context.Context, d string) ([]DKIMKey, error) {
	return func(ctx context.Context, d string) ([]DKIMKey, error) {
		names, err := st.KVKeys(ctx, k.KeyPrefix(d))
		if len(names) == 0 {
			return nil, err
		}
		return []DKIMKey{{Selector: "r1", TXT: "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 392)},
			{Selector: "e1", TXT: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}}, err
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// client is a browser: a cookie jar, no automatic redirects (tests look at them).
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends a same-origin request as a browser would (Sec-Fetch-Site: same-origin on POSTs).
func (e *env) do(c *http.Client, method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method != http.MethodGet {
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// login logs in and returns the browser.
func (e *env) login(addr, pw string) *http.Client {
	e.t.Helper()
	c := e.client()
	resp, body := e.do(c, "POST", "/login", url.Values{"address": {addr}, "password": {pw}})
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: %d %s", addr, resp.StatusCode, body)
	}
	return c
}

type recorder struct {
	code   int
	header http.Header
	body   bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{header: http.Header{}, code: 200} }
func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func mustReq(method, u string) *http.Request {
	return httptest.NewRequest(method, u, nil)
}
