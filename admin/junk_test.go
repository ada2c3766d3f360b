package admin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The user's own page and the admin's accounts page show the junk filter with its counter, and
// change it through the operations layer: a user switches theirs off, an admin sets another
// account's threshold, a threshold out of range is refused and nothing changes.
func TestJunkFilterPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	user, err := e.st.AccountByAddress(ctx, "user@example.test")
	must(t, err)
	day := time.Now().Unix() / 86400
	must(t, e.st.AddJunkFiled(ctx, user.ID, day, 12, 3))

	u := e.login("user@example.test", "user-password")
	_, body := e.do(u, "GET", "/me", nil)
	if !strings.Contains(body, `id="junk-counter"`) || !strings.Contains(body, "<b>12</b> to the inbox, <b>3</b> to Junk") {
		t.Errorf("/me lacks the junk counter:\n%s", body)
	}
	steps := []struct {
		who       string
		path      string
		form      url.Values
		enabled   bool
		threshold float64
	}{
		{"user", "/me/junk", url.Values{"threshold": {""}}, false, 0},                     // checkbox off
		{"user", "/me/junk", url.Values{"enabled": {"on"}, "threshold": {"2"}}, false, 0}, // refused
		{"admin", "/admin/accounts/junk", url.Values{"address": {"user@example.test"}, "enabled": {"on"}, "threshold": {"0.75"}}, true, 0.75},
	}
	a := e.login("admin@example.test", "admin-password")
	for i, s := range steps {
		e.do(map[string]*http.Client{"user": u, "admin": a}[s.who], "POST", s.path, s.form)
		js, err := e.st.JunkSettingsOf(ctx, user.ID)
		if err != nil || js.Enabled != s.enabled || js.Threshold != s.threshold {
			t.Errorf("step %d (%s %s): %+v %v", i, s.who, s.path, js, err)
		}
	}
	_, body = e.do(a, "GET", "/admin/accounts", nil)
	if !strings.Contains(body, "on, from 0.75; 12 to inbox, 3 to Junk") {
		t.Errorf("accounts page lacks the user's filter:\n%s", body)
	}
}
