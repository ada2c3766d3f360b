package admin

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The settings page is generated from the definitions: one section per service, an input of
// the setting's type, the secret never shown, and a refused value shown next to its field with
// nothing stored.
func TestSettingsPageFromDefinitions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	must(t, e.st.SetSetting(ctx, "queue.smarthost_password", "relay-secret"))
	c := e.login("admin@example.test", "admin-password")
	resp, body := e.do(c, "GET", "/admin/settings", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("settings page: %d", resp.StatusCode)
	}
	for _, want := range []string{
		"<h2>Outbound queue</h2>", "<h2>DNS records</h2>", "<h2>Mail server</h2>",
		`id="hostname"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("settings page lacks %s", want)
		}
	}
	field := func(key string) string {
		m := regexp.MustCompile(`(?s)<form[^>]*id="` + regexp.QuoteMeta(key) + `">.*?</form>`).FindString(body)
		if m == "" {
			t.Fatalf("no form for %s", key)
		}
		return m
	}
	if f := field("queue.concurrency"); !strings.Contains(f, `type="number"`) || !strings.Contains(f, `min="1" max="1000"`) {
		t.Errorf("queue.concurrency is not a bounded number input:\n%s", f)
	}
	if f := field("admin.mta_sts_mode"); !strings.Contains(f, "<select") || !strings.Contains(f, `<option value="enforce">`) {
		t.Errorf("admin.mta_sts_mode is not a select of its choices:\n%s", f)
	}
	if f := field("queue.smarthost_password"); !strings.Contains(f, `type="password"`) || strings.Contains(body, "relay-secret") {
		t.Errorf("the secret is shown or not a password input:\n%s", f)
	}
	if strings.Contains(body, `id="setup.token"`) {
		t.Error("the setup token is on the settings page")
	}
	resp, body = e.do(c, "POST", "/admin/settings", url.Values{"key": {"queue.retry_initial"}, "value": {"banana"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid value: %d", resp.StatusCode)
	}
	f := regexp.MustCompile(`(?s)<form[^>]*id="queue.retry_initial">.*?</form>`).FindString(body)
	if !strings.Contains(f, `class="error"`) || !strings.Contains(f, "duration") || !strings.Contains(f, `value="banana"`) {
		t.Errorf("the refusal is not next to the field:\n%s", f)
	}
	if _, set, _ := e.st.SettingValue(ctx, "queue.retry_initial"); set {
		t.Error("the refused value was stored")
	}
}
