package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mailstead/store"
)

// Every admin and user route refuses a request without a session: page views go to the login
// page, everything else gets 401.
func TestRoutesNeedASession(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for _, route := range AdminRoutes() {
		method, path, _ := strings.Cut(route, " ")
		resp, _ := e.do(c, method, path, url.Values{})
		switch {
		case method == "GET" && resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/login"):
		case method != "GET" && resp.StatusCode == http.StatusUnauthorized:
		default:
			t.Errorf("%s without session: %d %s", route, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A user who is not an admin gets 403 on admin routes, and their own page.
	u := e.login("user@example.test", "user-password")
	for _, route := range AdminRoutes() {
		method, path, _ := strings.Cut(route, " ")
		if !strings.HasPrefix(path, "/admin/") {
			continue
		}
		if resp, _ := e.do(u, method, path, url.Values{}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s as a user: %d", route, resp.StatusCode)
		}
	}
	if resp, body := e.do(u, "GET", "/me", nil); resp.StatusCode != 200 || !strings.Contains(body, "user@example.test") {
		t.Errorf("/me as user: %d", resp.StatusCode)
	}
	// A forged cookie is no session.
	c.Jar.SetCookies(mustURL(e.srv.URL), []*http.Cookie{{Name: sessionCookie, Value: "forged"}})
	if resp, _ := e.do(c, "GET", "/admin/accounts", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("forged cookie: %d", resp.StatusCode)
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

func TestSessionCookieAndHeaders(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	resp, _ := e.do(c, "POST", "/login", url.Values{"address": {"admin@example.test"}, "password": {"admin-password"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" {
		t.Fatalf("session cookie %+v", sc)
	}
	resp, _ = e.do(c, "GET", "/admin/accounts", nil)
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if resp.Header.Get(h) != want {
			t.Errorf("%s = %q", h, resp.Header.Get(h))
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	// Logging out ends the session on the server, not just in the browser.
	token := sc.Value
	e.do(c, "POST", "/logout", url.Values{})
	if _, err := e.st.WebSession(context.Background(), token); err == nil {
		t.Error("session alive after logout")
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin@example.test", "admin-password")
	form := url.Values{"domain": {"evil.test"}}
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "", "Origin", "https://evil.example"}} {
		resp, _ := e.do(c, "POST", "/admin/domains/add", form, hdr...)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin POST with %s: %d", hdr[0], resp.StatusCode)
		}
	}
	if ok, _ := e.st.IsLocalDomain(context.Background(), "evil.test"); ok {
		t.Fatal("a cross-origin POST added a domain")
	}
	if resp, _ := e.do(c, "POST", "/admin/domains/add", form); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin POST: %d", resp.StatusCode)
	}
	if ok, _ := e.st.IsLocalDomain(context.Background(), "evil.test"); !ok {
		t.Error("same-origin POST did not add the domain")
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	var logbuf bytes.Buffer
	e.adm.log = slog.New(slog.NewTextHandler(&logbuf, nil))
	c := e.client()
	for i := 0; i < 10; i++ {
		if resp, _ := e.do(c, "POST", "/login", url.Values{"address": {"admin@example.test"}, "password": {"wrong"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	resp, _ := e.do(c, "POST", "/login", url.Values{"address": {"admin@example.test"}, "password": {"admin-password"}})
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("11th attempt with the right password: %d, want 429", resp.StatusCode)
	}
	// Each failure is the one line the shipped fail2ban filter reads (contrib/fail2ban).
	line := regexp.MustCompile(`level=WARN msg="auth failed" proto=admin ip=127\.0\.0\.1 user=admin@example\.test`)
	if n := len(line.FindAllString(logbuf.String(), -1)); n != 10 {
		t.Errorf("%d failed-login lines, want 10:\n%s", n, logbuf.String())
	}
	// An app password never opens the web pages.
	e2 := newEnv(t)
	acct, _ := e2.st.AccountByAddress(context.Background(), "user@example.test")
	pw, _, _ := e2.st.AddAppPassword(context.Background(), acct.ID, "phone")
	if resp, _ := e2.do(e2.client(), "POST", "/login", url.Values{"address": {"user@example.test"}, "password": {pw}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("login with an app password: %d", resp.StatusCode)
	}
}

func TestSetupWizard(t *testing.T) {
	e := newEmptyEnv(t) // the wizard runs on an empty data directory only
	ctx := context.Background()
	must(t, e.st.SetSetting(ctx, "setup.token", "tok123"))
	c := e.client()
	if resp, _ := e.do(c, "GET", "/setup?token=nope", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	resp, body := e.do(c, "GET", "/setup?token=tok123", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `name="hostname"`) {
		t.Fatalf("setup form: %d", resp.StatusCode)
	}
	form := url.Values{"token": {"tok123"}, "hostname": {"mx.new.test"}, "domain": {"new.test"}, "admin": {"boss@new.test"},
		"password": {"a long password"}, "password2": {"a different one"}}
	if resp, body := e.do(c, "POST", "/setup", form); resp.StatusCode != 400 || !strings.Contains(body, "differ") {
		t.Errorf("mismatched passwords: %d", resp.StatusCode)
	}
	form.Set("password2", "a long password")
	resp, _ = e.do(c, "POST", "/setup", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/admin/dns?domain=new.test") {
		t.Fatalf("setup: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if h, _, _ := e.st.SettingValue(ctx, "hostname"); h != "mx.new.test" {
		t.Errorf("hostname %q", h)
	}
	a, err := e.st.AccountByAddress(ctx, "boss@new.test")
	if err != nil || !a.IsAdmin {
		t.Errorf("admin account %+v %v", a, err)
	}
	if ids, ok, _ := e.st.IsLocalAddress(ctx, "postmaster@new.test"); !ok || ids[0] != a.ID {
		t.Errorf("postmaster@new.test does not reach the admin")
	}
	// The wizard logged the admin in and lands on the DNS records.
	resp, body = e.do(c, "GET", resp.Header.Get("Location"), nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "_dmarc.new.test.") || !strings.Contains(body, "Setup is done") {
		t.Errorf("DNS page after setup: %d", resp.StatusCode)
	}
	// The token is spent.
	for _, m := range []string{"GET", "POST"} {
		if resp, _ := e.do(e.client(), m, "/setup?token=tok123", form); resp.StatusCode != http.StatusGone {
			t.Errorf("%s with the used token: %d, want 410", m, resp.StatusCode)
		}
	}
}

// Values from mail (sender, recipient, subject, remote replies) are text on every page.
func TestMailValuesAreEscaped(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	xss := `<script>alert(1)</script>`
	data := "From: x@evil.test\r\nSubject: " + xss + " =?utf-8?q?=3Cimg_src=3Dx_onerror=3Dalert(2)=3E?=\r\n\r\nhi\r\n"
	if _, err := e.st.Deliver(ctx, &store.Delivery{MailFrom: "x@evil.test", Data: []byte(data),
		Remote: []store.RemoteRecipient{{Address: "victim@remote.test"}}}); err != nil {
		t.Fatal(err)
	}
	q, _ := e.st.QueueList(ctx)
	must(t, e.st.QueueDefer(ctx, []int64{q[0].ID}, `451 <b onmouseover="alert(3)">busy</b>`, "mx.remote.test", q[0].NextAttempt))
	must(t, e.st.RecordMailEvents(ctx, store.MailEvent{Kind: store.MailRejected, MailFrom: `"<svg onload=alert(4)>"@evil.test`, Detail: xss}))
	c := e.login("admin@example.test", "admin-password")
	for _, path := range []string{"/admin/queue", "/admin/events"} {
		_, body := e.do(c, "GET", path, nil)
		for _, bad := range []string{"<script>", "<img", "<b onmouseover", "<svg"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q unescaped", path, bad)
			}
		}
	}
	_, body := e.do(c, "GET", "/admin/queue", nil)
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(body, "&lt;img src=x onerror=alert(2)&gt;") {
		t.Errorf("queue page does not show the subject as text:\n%s", body)
	}
}

func TestManagementPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.login("admin@example.test", "admin-password")
	post := func(path string, kv ...string) {
		t.Helper()
		f := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		resp, _ := e.do(c, "POST", path, f)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	post("/admin/domains/add", "domain", "second.test")
	if keys, _ := e.adm.cfg.DKIMKeys(ctx, "second.test"); len(keys) != 2 {
		t.Errorf("new domain has %d DKIM keys", len(keys))
	}
	post("/admin/accounts/add", "address", "carol@second.test", "password", "carol-password", "quota", "100")
	a, err := e.st.AccountByAddress(ctx, "carol@second.test")
	if err != nil || a.Quota != 100<<20 {
		t.Fatalf("carol: %+v %v", a, err)
	}
	post("/admin/accounts/password", "address", "carol@second.test", "password", "new-carol-pw")
	if _, err := e.st.Authenticate(ctx, "carol@second.test", "new-carol-pw"); err != nil {
		t.Errorf("reset password: %v", err)
	}
	post("/admin/aliases/add", "alias", "@second.test", "targets", "carol@second.test")
	if ids, ok, _ := e.st.IsLocalAddress(ctx, "anything@second.test"); !ok || ids[0] != a.ID {
		t.Error("catch-all not working")
	}
	_, body := e.do(c, "GET", "/admin/aliases", nil)
	if !strings.Contains(body, "catch-all") {
		t.Error("aliases page does not mark the catch-all")
	}
	post("/admin/accounts/remove", "address", "carol@second.test") // no mail: removed at once
	if _, err := e.st.AccountByAddress(ctx, "carol@second.test"); err == nil {
		t.Error("account not removed")
	}
	// The domain still has its postmaster alias (made with it); that alone does not block removal.
	post("/admin/aliases/remove", "alias", "@second.test")
	post("/admin/domains/remove", "domain", "second.test")
	if ok, _ := e.st.IsLocalDomain(ctx, "second.test"); ok {
		t.Error("domain with only its postmaster alias left was not removed")
	}
	post("/admin/domains/remove", "domain", "example.test") // has accounts: refused
	if ok, _ := e.st.IsLocalDomain(ctx, "example.test"); !ok {
		t.Error("domain with accounts removed")
	}
	post("/admin/settings", "key", "queue.retry_max", "value", "2h")
	if v, _, _ := e.st.SettingValue(ctx, "queue.retry_max"); v != "2h" {
		t.Errorf("setting = %q", v)
	}
	if resp, body := e.do(c, "POST", "/admin/settings", url.Values{"key": {"setup.token"}, "value": {"x"}}); resp.StatusCode != 400 ||
		!strings.Contains(body, "not by hand") {
		t.Errorf("setup.token from the settings page: %d", resp.StatusCode)
	}
	if v, _, _ := e.st.SettingValue(ctx, "setup.token"); v != "" {
		t.Error("setup.token set from the settings page")
	}
	for _, p := range []string{"/admin/domains", "/admin/accounts", "/admin/queue", "/admin/certificates", "/admin/settings",
		"/admin/events", "/admin/tokens", "/admin/dns", "/admin/dns/zone?domain=example.test", "/me"} {
		if resp, _ := e.do(c, "GET", p, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
	// Queue retry and remove through the page.
	e.st.Deliver(ctx, &store.Delivery{MailFrom: "admin@example.test", Data: []byte("Subject: x\r\n\r\nx\r\n"),
		Remote: []store.RemoteRecipient{{Address: "a@remote.test"}, {Address: "b@remote.test"}}})
	q, _ := e.st.QueueList(ctx)
	post("/admin/queue/remove", "id", itoa(q[1].ID))
	if q2, _ := e.st.QueueList(ctx); len(q2) != 1 {
		t.Errorf("queue after remove: %d", len(q2))
	}
	post("/admin/queue/retry", "id", itoa(q[0].ID))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestUserPageAppPasswords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.login("user@example.test", "user-password")
	// Post/redirect/get: the POST makes one password, the page after it shows it once, at the
	// top; loading the page again shows it no more and makes none.
	resp, _ := e.do(c, "POST", "/me/app-passwords", url.Values{"name": {"iPhone"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/me") {
		t.Fatalf("make app password: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body := e.do(c, "GET", "/me", nil)
	i := strings.Index(body, `<pre id="new-app-password">`)
	if i < 0 || i > strings.Index(body, "Logged in as") {
		t.Fatalf("the new password is not at the top of the page")
	}
	if _, again := e.do(c, "GET", "/me", nil); strings.Contains(again, `id="new-app-password"`) {
		t.Error("reloading the page shows the password again")
	}
	acct, _ := e.st.AccountByAddress(ctx, "user@example.test")
	if aps, _ := e.st.AppPasswords(ctx, acct.ID); len(aps) != 1 {
		t.Errorf("%d app passwords after one POST and two loads", len(aps))
	}
	pw := body[i+len(`<pre id="new-app-password">`):]
	pw = pw[:strings.Index(pw, "<")]
	if _, err := e.st.Authenticate(ctx, "user@example.test", pw); err != nil {
		t.Errorf("app password from the page does not authenticate: %v", err)
	}
	if !strings.Contains(body, "data:image/png;base64,") || !strings.Contains(body, ">20993<") {
		t.Error("user page lacks the QR code or the client settings")
	}
	// Changing the password needs the current one.
	if resp, _ := e.do(c, "POST", "/me/password", url.Values{"current": {"wrong"}, "password": {"0123456789ab"}, "password2": {"0123456789ab"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%d", resp.StatusCode)
	}
	if _, err := e.st.AuthenticatePrimary(ctx, "user@example.test", "0123456789ab"); err == nil {
		t.Error("password changed without the current one")
	}
	e.do(c, "POST", "/me/password", url.Values{"current": {"user-password"}, "password": {"0123456789ab"}, "password2": {"0123456789ab"}})
	if _, err := e.st.AuthenticatePrimary(ctx, "user@example.test", "0123456789ab"); err != nil {
		t.Error("password not changed")
	}
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	adm, _ := e.st.AccountByAddress(ctx, "admin@example.test")
	usr, _ := e.st.AccountByAddress(ctx, "user@example.test")
	tok, _, _ := e.st.CreateAPIToken(ctx, adm.ID, "test")
	utok, _, _ := e.st.CreateAPIToken(ctx, usr.ID, "test")
	call := func(token, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	if code, _ := call("", "GET", "/api/v1/domains", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := call(utok, "GET", "/api/v1/domains", ""); code != 403 {
		t.Errorf("user's token: %d", code)
	}
	// A session cookie does not open the API.
	c := e.login("admin@example.test", "admin-password")
	if resp, _ := e.do(c, "GET", "/api/v1/domains", nil); resp.StatusCode != 401 {
		t.Errorf("session cookie on the API: %d", resp.StatusCode)
	}
	code, body := call(tok, "POST", "/api/v1/domains", `{"name":"api.test"}`)
	if code != 200 {
		t.Fatalf("add domain: %d %s", code, body)
	}
	if code, _ := call(tok, "POST", "/api/v1/domains", `{"name":"api.test"}`); code != 409 {
		t.Errorf("duplicate domain: %d", code)
	}
	if code, body := call(tok, "POST", "/api/v1/accounts", `{"address":"d@api.test","password":"d-password","quota":1048576}`); code != 200 {
		t.Errorf("add account: %d %s", code, body)
	}
	code, body = call(tok, "GET", "/api/v1/accounts", "")
	var accts []apiAccount
	json.Unmarshal([]byte(body), &accts)
	if code != 200 || len(accts) != 3 {
		t.Errorf("accounts: %d %s", code, body)
	}
	if code, _ := call(tok, "PUT", "/api/v1/accounts/d@api.test/password", `{"password":"another-pw"}`); code != 200 {
		t.Errorf("password: %d", code)
	}
	if code, _ := call(tok, "POST", "/api/v1/aliases", `{"address":"info@api.test","targets":["d@api.test"]}`); code != 200 {
		t.Errorf("alias: %d", code)
	}
	code, body = call(tok, "GET", "/api/v1/domains/api.test/dns", "")
	if code != 200 || !strings.Contains(body, `"status":"missing"`) || !strings.Contains(body, "_dmarc.api.test.") {
		t.Errorf("dns: %d %s", code, body)
	}
	if code, _ := call(tok, "PUT", "/api/v1/settings/queue.retry_max", `{"value":"3h"}`); code != 200 {
		t.Errorf("setting: %d", code)
	}
	if code, _ := call(tok, "PUT", "/api/v1/settings/no.such", `{"value":"3h"}`); code != 400 {
		t.Errorf("unknown setting: %d", code)
	}
	if code, _ := call(tok, "DELETE", "/api/v1/queue/999", ""); code != 404 {
		t.Errorf("missing queue entry: %d", code)
	}
	if code, _ := call(tok, "DELETE", "/api/v1/accounts/d@api.test", ""); code != 200 {
		t.Errorf("remove account: %d", code)
	}
	// Every answer uses snake_case keys and leaves unknown dates out (no year 1).
	for _, p := range []string{"/api/v1/queue", "/api/v1/settings", "/api/v1/events", "/api/v1/certificates", "/api/v1/aliases",
		"/api/v1/domains", "/api/v1/accounts", "/api/v1/domains/api.test/dns"} {
		code, body := call(tok, "GET", p, "")
		var v any
		if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
			t.Errorf("GET %s: %d %s", p, code, body)
			continue
		}
		if bad := nonSnakeKeys(v); len(bad) > 0 {
			t.Errorf("GET %s: keys %v are not snake_case: %s", p, bad, body)
		}
		if strings.Contains(body, "0001-01-01") {
			t.Errorf("GET %s gives a zero date: %s", p, body)
		}
	}
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// nonSnakeKeys lists the object keys anywhere in a decoded JSON value that are not snake_case.
func nonSnakeKeys(v any) []string {
	var bad []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeCase.MatchString(k) {
				bad = append(bad, k)
			}
			bad = append(bad, nonSnakeKeys(e)...)
		}
	case []any:
		for _, e := range v {
			bad = append(bad, nonSnakeKeys(e)...)
		}
	}
	return bad
}
