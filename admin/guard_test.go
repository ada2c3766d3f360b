package admin

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"mailstead/store"
)

// holdMail gives the account at addr n messages and an alias routing only to it.
func holdMail(t *testing.T, e *env, addr, alias string, n int) {
	t.Helper()
	ctx := context.Background()
	a, err := e.st.AccountByAddress(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := e.st.Deliver(ctx, &store.Delivery{MailFrom: "x@remote.test", Data: []byte("Subject: hi\r\n\r\nhi\r\n"),
			Local: []store.LocalRecipient{{AccountID: a.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	must(t, e.st.AddAlias(ctx, alias, []string{addr}))
}

// TestRemoveAccountPageConfirms: the page removes an account holding mail only from a
// confirmation that names its message count and its aliases; a stale count is asked again.
func TestRemoveAccountPageConfirms(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	holdMail(t, e, "user@example.test", "info@example.test", 2)
	c := e.login("admin@example.test", "admin-password")
	for _, confirm := range []string{"", "1"} {
		resp, body := e.do(c, "POST", "/admin/accounts/remove", url.Values{"address": {"user@example.test"}, "confirm_messages": {confirm}})
		if resp.StatusCode != 200 || !strings.Contains(body, `<strong id="message-count">2</strong>`) ||
			!strings.Contains(body, "<li>info@example.test</li>") || !strings.Contains(body, `name="confirm_messages" value="2"`) {
			t.Errorf("remove with confirm_messages=%q: %d\n%s", confirm, resp.StatusCode, body)
		}
		if _, err := e.st.AccountByAddress(ctx, "user@example.test"); err != nil {
			t.Fatalf("removed with confirm_messages=%q", confirm)
		}
	}
	resp, _ := e.do(c, "POST", "/admin/accounts/remove", url.Values{"address": {"user@example.test"}, "confirm_messages": {"2"}})
	if _, err := e.st.AccountByAddress(ctx, "user@example.test"); resp.StatusCode != http.StatusSeeOther || err == nil {
		t.Errorf("confirmed removal: %d, account still there: %v", resp.StatusCode, err == nil)
	}
	// The only admin is the one logged in: the page refuses removing or demoting it.
	e.do(c, "POST", "/admin/accounts/remove", url.Values{"address": {"admin@example.test"}, "confirm_messages": {"0"}})
	e.do(c, "POST", "/admin/accounts/admin", url.Values{"address": {"admin@example.test"}})
	if a, err := e.st.AccountByAddress(ctx, "admin@example.test"); err != nil || !a.IsAdmin {
		t.Errorf("the only admin after the page's refusals: %+v %v", a, err)
	}
}

// TestRemoveAccountAPIGuards: DELETE of an account holding mail is 409 naming the count until
// confirm_messages covers it (or force=true); the only admin cannot demote itself (409); PUT
// .../admin grants admin rights.
func TestRemoveAccountAPIGuards(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	holdMail(t, e, "user@example.test", "info@example.test", 3)
	adm, _ := e.st.AccountByAddress(ctx, "admin@example.test")
	tok, _, _ := e.st.CreateAPIToken(ctx, adm.ID, "test")
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("DELETE", "/api/v1/accounts/user@example.test", ""); code != 409 || !strings.Contains(body, "holds 3 message(s)") ||
		!strings.Contains(body, "info@example.test") {
		t.Errorf("delete without confirmation: %d %s", code, body)
	}
	if code, body := call("PUT", "/api/v1/accounts/admin@example.test/admin", `{"admin":false}`); code != 409 || !strings.Contains(body, "only admin") {
		t.Errorf("demote the only admin: %d %s", code, body)
	}
	if code, body := call("PUT", "/api/v1/accounts/user@example.test/admin", `{"admin":true}`); code != 200 {
		t.Errorf("make user admin: %d %s", code, body)
	}
	if a, _ := e.st.AccountByAddress(ctx, "user@example.test"); !a.IsAdmin {
		t.Error("user is not admin after PUT .../admin")
	}
	code, body := call("DELETE", "/api/v1/accounts/user@example.test?confirm_messages=3", "")
	if code != 200 || !strings.Contains(body, `"messages":3`) || !strings.Contains(body, `"aliases":["info@example.test"]`) {
		t.Errorf("confirmed delete: %d %s", code, body)
	}
}
