package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"mailstead/mailtest"
	"mailstead/manage"
	"mailstead/server"
	"mailstead/store"
)

// managePath is one way to reach the operations layer: the mailstead command, the control
// socket, the JSON API or the admin pages. Each method runs one action and returns its error;
// usage reports whether the path refused it as bad input (exit 2, 400).
type managePath interface {
	name() string
	domainAdd(d string) error
	domainRemove(d string) error
	accountAdd(addr, pw string) error
	accountRemove(addr string) error
	passwd(addr, pw string) error
	aliasAdd(alias, target string) error
	aliasRemove(alias string) error
	setting(key, value string) error
	queueRetry(id int64) error
	queueRemove(id int64) error
}

// refusal is an action a path refused; input says it was refused as bad input.
type refusal struct {
	msg   string
	input bool
}

func (r refusal) Error() string { return r.msg }

// cliPath runs the mailstead binary, which goes through the running server's socket.
type cliPath struct {
	t   *testing.T
	bin string
	dir string
}

func (p cliPath) name() string { return "cli" }

func (p cliPath) run(stdin string, args ...string) error {
	cmd := exec.Command(p.bin, append(args, "--data", p.dir)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return refusal{msg: string(out), input: ee.ExitCode() == 2}
	}
	if err != nil {
		p.t.Fatalf("mailstead %v: %v", args, err)
	}
	return nil
}

func (p cliPath) domainAdd(d string) error            { return p.run("", "domain", "add", d) }
func (p cliPath) domainRemove(d string) error         { return p.run("", "domain", "remove", d) }
func (p cliPath) accountAdd(a, pw string) error       { return p.run(pw+"\n", "account", "add", a) }
func (p cliPath) accountRemove(a string) error        { return p.run("", "account", "remove", a) }
func (p cliPath) passwd(a, pw string) error           { return p.run(pw+"\n", "account", "passwd", a) }
func (p cliPath) aliasAdd(al, target string) error    { return p.run("", "alias", "add", al, target) }
func (p cliPath) aliasRemove(al string) error         { return p.run("", "alias", "remove", al) }
func (p cliPath) setting(key, value string) error     { return p.run("", "settings", "set", key, value) }
func (s socketPath) domainAdd(d string) error         { return s.call("", "domain", "add", d) }
func (s socketPath) domainRemove(d string) error      { return s.call("", "domain", "remove", d) }
func (s socketPath) accountAdd(a, pw string) error    { return s.call(pw, "account", "add", a) }
func (s socketPath) accountRemove(a string) error     { return s.call("", "account", "remove", a) }
func (s socketPath) passwd(a, pw string) error        { return s.call(pw, "account", "passwd", a) }
func (s socketPath) aliasAdd(al, target string) error { return s.call("", "alias", "add", al, target) }
func (s socketPath) aliasRemove(al string) error      { return s.call("", "alias", "remove", al) }
func (s socketPath) setting(key, value string) error {
	return s.call("", "settings", "set", key, value)
}
func (s socketPath) queueRetry(id int64) error  { return s.call("", "queue", "retry", itoa(id)) }
func (s socketPath) queueRemove(id int64) error { return s.call("", "queue", "remove", itoa(id)) }
func (p cliPath) queueRetry(id int64) error     { return p.run("", "queue", "retry", itoa(id)) }
func (p cliPath) queueRemove(id int64) error    { return p.run("", "queue", "remove", itoa(id)) }
func (p apiPath) queueRetry(id int64) error {
	return p.do("POST", "/api/v1/queue/"+itoa(id)+"/retry", nil)
}
func (p apiPath) queueRemove(id int64) error  { return p.do("DELETE", "/api/v1/queue/"+itoa(id), nil) }
func (p pagePath) queueRetry(id int64) error  { return p.post("/admin/queue/retry", "id", itoa(id)) }
func (p pagePath) queueRemove(id int64) error { return p.post("/admin/queue/remove", "id", itoa(id)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// socketPath sends requests over the control socket, as the CLI does.
type socketPath struct{ dir string }

func (socketPath) name() string { return "socket" }

func (s socketPath) call(stdin string, args ...string) error {
	_, err := server.Call(s.dir, server.Request{Command: args[0], Args: args[1:], Stdin: stdin})
	if err != nil {
		return refusal{msg: err.Error(), input: server.IsUsage(err)}
	}
	return nil
}

// apiPath calls the JSON API with an admin's token.
type apiPath struct {
	t     *testing.T
	base  string
	token string
	c     *http.Client
}

func (apiPath) name() string { return "api" }

func (p apiPath) do(method, path string, body any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.base+path, r)
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		if out.Error == "" {
			p.t.Errorf("%s %s: %d without a JSON error", method, path, resp.StatusCode)
		}
		return refusal{msg: fmt.Sprintf("%d %s", resp.StatusCode, out.Error), input: resp.StatusCode == http.StatusBadRequest}
	}
	return nil
}

func (p apiPath) domainAdd(d string) error {
	return p.do("POST", "/api/v1/domains", map[string]string{"name": d})
}
func (p apiPath) domainRemove(d string) error {
	return p.do("DELETE", "/api/v1/domains/"+url.PathEscape(d), nil)
}
func (p apiPath) accountAdd(a, pw string) error {
	return p.do("POST", "/api/v1/accounts", map[string]string{"address": a, "password": pw})
}
func (p apiPath) accountRemove(a string) error {
	return p.do("DELETE", "/api/v1/accounts/"+url.PathEscape(a), nil)
}
func (p apiPath) passwd(a, pw string) error {
	return p.do("PUT", "/api/v1/accounts/"+url.PathEscape(a)+"/password", map[string]string{"password": pw})
}
func (p apiPath) aliasAdd(al, target string) error {
	return p.do("POST", "/api/v1/aliases", map[string]any{"address": al, "targets": []string{target}})
}
func (p apiPath) aliasRemove(al string) error {
	return p.do("DELETE", "/api/v1/aliases/"+url.PathEscape(al), nil)
}
func (p apiPath) setting(key, value string) error {
	return p.do("PUT", "/api/v1/settings/"+url.PathEscape(key), map[string]string{"value": value})
}

// pagePath posts the admin pages' forms in a logged-in browser.
type pagePath struct {
	b    *browser
	base string
}

func (pagePath) name() string { return "page" }

// post submits a form; the pages answer a redirect with a flash cookie ("!" marks an error) or,
// for a refused setting, the page again with status 400 and the error next to the field.
func (p pagePath) post(path string, kv ...string) error {
	f := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	resp, body := p.b.do("POST", p.base+path, f)
	if resp.StatusCode == http.StatusBadRequest {
		if !strings.Contains(body, `class="error"`) {
			p.b.t.Errorf("POST %s: 400 without an error on the page", path)
		}
		return refusal{msg: "400", input: true}
	}
	if resp.StatusCode != http.StatusSeeOther {
		p.b.t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "flash") {
			if msg, _ := url.QueryUnescape(c.Value); strings.HasPrefix(msg, "!") {
				return refusal{msg: msg[1:]}
			}
		}
	}
	return nil
}

func (p pagePath) domainAdd(d string) error    { return p.post("/admin/domains/add", "domain", d) }
func (p pagePath) domainRemove(d string) error { return p.post("/admin/domains/remove", "domain", d) }
func (p pagePath) accountAdd(a, pw string) error {
	return p.post("/admin/accounts/add", "address", a, "password", pw)
}
func (p pagePath) accountRemove(a string) error {
	return p.post("/admin/accounts/remove", "address", a, "confirm", "yes")
}
func (p pagePath) passwd(a, pw string) error {
	return p.post("/admin/accounts/password", "address", a, "password", pw)
}
func (p pagePath) aliasAdd(al, target string) error {
	return p.post("/admin/aliases/add", "alias", al, "targets", target)
}
func (p pagePath) aliasRemove(al string) error { return p.post("/admin/aliases/remove", "alias", al) }
func (p pagePath) setting(key, value string) error {
	return p.post("/admin/settings", "key", key, "value", value)
}

// managePaths starts a server with alice@example.test as its admin and returns the four paths.
func managePaths(t *testing.T) (*mailtest.Server, []managePath) {
	// unreachable.test has an MX that refuses connections: its mail stays queued (deferred).
	zone := mailtest.NewDNSZone(t)
	zone.Add("remote.test. 300 IN A 127.0.0.1")
	zone.Add("unreachable.test. 300 IN MX 10 mx.unreachable.test.")
	zone.Add("mx.unreachable.test. 300 IN A 127.0.0.1")
	srv := mailtest.Start(t, mailtest.Options{DNS: zone.Addr()})
	ctx := context.Background()
	if err := srv.Store().SetAdmin(ctx, "alice@example.test", true); err != nil {
		t.Fatal(err)
	}
	alice, _ := srv.Store().AccountByAddress(ctx, "alice@example.test")
	token, _, err := srv.Store().CreateAPIToken(ctx, alice.ID, "paths test")
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + srv.Opts.Addr(443)
	b := newBrowser(t)
	if resp, _ := b.do("POST", base+"/login", url.Values{"address": {"alice@example.test"}, "password": {"alice-password"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	return srv, []managePath{
		cliPath{t: t, bin: mailtest.Binary(t), dir: srv.Opts.Dir},
		socketPath{dir: srv.Opts.Dir},
		apiPath{t: t, base: base, token: token, c: newBrowser(t).c},
		pagePath{b: b, base: base},
	}
}

// TestEveryActionOnEveryPath runs each management action through the CLI, the control socket,
// the JSON API and the web page and checks that each leaves the same state: a domain comes
// with its DKIM keys and postmaster alias, and add then remove leaves nothing behind.
func TestEveryActionOnEveryPath(t *testing.T) {
	srv, paths := managePaths(t)
	st := srv.Store()
	ctx := context.Background()
	dkimKeys := func(d string) int {
		keys, err := st.KVKeys(ctx, "dkim/"+d+"/")
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	// One outbound message per path, to a domain that never answers, so it stays queued.
	queuedIDs := map[string]int64{}
	for _, p := range paths {
		if _, err := st.Deliver(ctx, &store.Delivery{MailFrom: "alice@example.test", Data: []byte("Subject: " + p.name() + "\r\n\r\nx\r\n"),
			Remote: []store.RemoteRecipient{{Address: p.name() + "@unreachable.test"}}}); err != nil {
			t.Fatal(err)
		}
		q, _ := st.QueueList(ctx)
		for _, e := range q {
			if e.Rcpt == p.name()+"@unreachable.test" {
				queuedIDs[p.name()] = e.ID
			}
		}
	}
	queued := func(name string) int64 { return queuedIDs[name] }
	inQueue := func(name string) bool {
		_, err := st.QueueEntryByID(ctx, queuedIDs[name])
		return err == nil
	}
	for _, p := range paths {
		t.Run(p.name(), func(t *testing.T) {
			d := p.name() + ".test"
			user, alias := "bob@"+d, "info@"+d
			steps := []struct {
				what  string
				do    func() error
				check func() string // "" when the state is right
			}{
				{"domain add", func() error { return p.domainAdd(d) }, func() string {
					if ok, _ := st.IsLocalDomain(ctx, d); !ok {
						return "domain missing"
					}
					if n := dkimKeys(d); n != 2 {
						return fmt.Sprintf("%d DKIM keys, want 2", n)
					}
					if ids, ok, _ := st.IsLocalAddress(ctx, "postmaster@"+d); !ok || len(ids) != 1 {
						return "postmaster@ does not reach the admin"
					}
					return ""
				}},
				{"account add", func() error { return p.accountAdd(user, "a good password") }, func() string {
					if _, err := st.Authenticate(ctx, user, "a good password"); err != nil {
						return "cannot log in: " + err.Error()
					}
					return ""
				}},
				{"account passwd", func() error { return p.passwd(user, "another good one") }, func() string {
					if _, err := st.Authenticate(ctx, user, "another good one"); err != nil {
						return "new password refused: " + err.Error()
					}
					return ""
				}},
				{"alias add", func() error { return p.aliasAdd(alias, user) }, func() string {
					if _, ok, _ := st.IsLocalAddress(ctx, alias); !ok {
						return "alias does not deliver"
					}
					return ""
				}},
				{"setting", func() error { return p.setting("queue.retry_max", "3h") }, func() string {
					if v, _, _ := st.SettingValue(ctx, "queue.retry_max"); v != "3h" {
						return "queue.retry_max = " + v
					}
					return ""
				}},
				{"alias remove", func() error { return p.aliasRemove(alias) }, func() string {
					if _, ok, _ := st.IsLocalAddress(ctx, alias); ok {
						return "alias still delivers"
					}
					return ""
				}},
				{"account remove", func() error { return p.accountRemove(user) }, func() string {
					if _, err := st.AccountByAddress(ctx, user); err == nil {
						return "account still there"
					}
					return ""
				}},
				{"queue retry", func() error { return p.queueRetry(queued(p.name())) }, func() string { return "" }},
				{"queue remove", func() error { return p.queueRemove(queued(p.name())) }, func() string {
					if inQueue(p.name()) {
						return "queue entry still there"
					}
					return ""
				}},
				{"domain remove", func() error { return p.domainRemove(d) }, func() string {
					if ok, _ := st.IsLocalDomain(ctx, d); ok {
						return "domain still there"
					}
					if n := dkimKeys(d); n != 0 {
						return fmt.Sprintf("%d DKIM keys left", n)
					}
					if _, ok, _ := st.IsLocalAddress(ctx, "postmaster@"+d); ok {
						return "postmaster alias left"
					}
					return ""
				}},
			}
			for _, s := range steps {
				if err := s.do(); err != nil {
					t.Fatalf("%s: %v", s.what, err)
				}
				if bad := s.check(); bad != "" {
					t.Fatalf("after %s: %s", s.what, bad)
				}
			}
		})
	}
}

// TestInvalidValuesRefusedOnEveryPath: each value the issue names is refused as bad input on
// every path, and nothing is stored.
func TestInvalidValuesRefusedOnEveryPath(t *testing.T) {
	srv, paths := managePaths(t)
	st := srv.Store()
	ctx := context.Background()
	settings := []struct{ key, value string }{
		{"hostname", ""},
		{"hostname", "not a hostname!!"},
		{"hostname", "localhost"},
		{"smtp.max_recipients", "abc"},
		{"smtp.max_recipients", "0"},
		{"queue.retry_initial", "banana"},
		{"admin.mta_sts_mode", "bogus"},
		{"admin.public_ips", "192.0.2.1;198.51.100.2"},
		{"no.such_setting", "1"},
	}
	passwords := []string{"short", "abc", "          ", "nine char"}
	for _, p := range paths {
		t.Run(p.name(), func(t *testing.T) {
			for _, s := range settings {
				before, set, _ := st.SettingValue(ctx, s.key)
				err := p.setting(s.key, s.value)
				var r refusal
				if !errors.As(err, &r) || !r.input {
					t.Errorf("settings set %s %q: %v, want refused as bad input", s.key, s.value, err)
				}
				if after, set2, _ := st.SettingValue(ctx, s.key); after != before || set2 != set {
					t.Errorf("settings set %s %q stored %q", s.key, s.value, after)
				}
			}
			for _, pw := range passwords {
				addr := "weak@example.test"
				err := p.accountAdd(addr, pw)
				// One rule, one message, on every path (a page refuses with its flash, not a status).
				var r refusal
				if !errors.As(err, &r) || !(r.input || p.name() == "page") || !strings.Contains(r.msg, manage.PasswordRule) {
					t.Errorf("account add with password %q: %v, want refused with %q", pw, err, manage.PasswordRule)
				}
				if _, err := st.AccountByAddress(ctx, addr); err == nil {
					t.Fatalf("account made with password %q", pw)
				}
				if err := p.passwd("alice@example.test", pw); err == nil {
					t.Errorf("passwd to %q accepted", pw)
				}
			}
			if _, err := st.Authenticate(ctx, "alice@example.test", "alice-password"); err != nil {
				t.Errorf("alice's password changed: %v", err)
			}
			// An address is an account or an alias, never both; the refusal names the other.
			if err := p.aliasAdd("alice@example.test", "alice@example.test"); err == nil || !strings.Contains(err.Error(), "alice@example.test is an account") && p.name() != "page" {
				t.Errorf("alias over an account: %v", err)
			}
		})
	}
}
