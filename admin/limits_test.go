package admin

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"mailstead/mailtest/testkit"
)

// 250 parallel wrong logins from one address: the failures are counted before any password is
// hashed, so exactly the budget (10) is checked and the rest are refused with 429.
func TestLoginBurstCannotPassTheLimit(t *testing.T) {
	e := newEnv(t)
	var logbuf testkit.LogBuffer
	e.adm.log = slog.New(slog.NewTextHandler(&logbuf, nil))
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50) // the test client's own connection budget
	for range 250 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, _ := e.do(e.client(), "POST", "/login", url.Values{"address": {"admin@example.test"}, "password": {"wrong"}})
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// On a loaded machine (-race) a check may wait past the hashing queue's deadline: 503, not
	// checked, and its slot goes back to the budget for a later request. So at most 10 are
	// checked, every slot ended checked or busy, and everything else was refused.
	checked, busy := codes[http.StatusUnauthorized], codes[http.StatusServiceUnavailable]
	if checked > 10 || checked+busy < 10 || checked+busy+codes[http.StatusTooManyRequests] != 250 {
		t.Errorf("answers %v, want at most 10×401, 10 or more 401 and 503 together, the rest 429", codes)
	}
	if n := strings.Count(logbuf.String(), `msg="auth failed"`); n != checked {
		t.Errorf("%d failed-login lines, want %d", n, checked)
	}
}

// Bad API tokens and bad setup links spend budgets of their own, not the web login's.
func TestTokenBudgetsAreSeparate(t *testing.T) {
	e := newEnv(t)
	must(t, e.st.SetSetting(context.Background(), "setup.token", "the-real-token"))
	c := e.client()
	for i := range 12 {
		resp, _ := e.do(c, "GET", "/api/v1/domains", nil, "Authorization", "Bearer wrong")
		if want := map[bool]int{true: 401, false: 429}[i < 10]; resp.StatusCode != want {
			t.Errorf("bad API call %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	for range 10 {
		e.do(c, "GET", "/setup?token=wrong", nil)
	}
	if resp, _ := e.do(c, "GET", "/setup?token=wrong", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("11th bad setup link: %d, want 429", resp.StatusCode)
	}
	must(t, e.st.SetSetting(context.Background(), "setup.token", ""))
	resp, _ := e.do(c, "POST", "/login", url.Values{"address": {"admin@example.test"}, "password": {"admin-password"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("web login after bad tokens from the same address: %d, want 303", resp.StatusCode)
	}
}

func TestNextIsASameSitePath(t *testing.T) {
	for _, tc := range []struct{ next, want string }{
		{"/admin/dns?domain=example.test", "/admin/dns?domain=example.test"},
		{"/me", "/me"},
		{"//evil.example", ""},
		{"/\\evil.example", ""},
		{"/\t/evil.example", ""},
		{"/\n/evil.example", ""},
		{"/\r\n/evil.example", ""},
		{"/ /evil.example", ""},
		{"/a\\b", ""},
		{"/\x00", ""},
		{"/\x7f", ""},
		{"https://evil.example/", ""},
		{"evil.example", ""},
		{"", ""},
	} {
		if got := safeNext(tc.next); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.next, got, tc.want)
		}
	}
	// Through the login page, as a browser sends it: /%09/evil.example.
	e := newEnv(t)
	c := e.client()
	resp, _ := e.do(c, "POST", "/login?", url.Values{"address": {"admin@example.test"}, "password": {"admin-password"},
		"next": {"/\t/evil.example"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/admin/" {
		t.Errorf("login with next=/%%09/evil.example: %d to %q, want 303 to /admin/", resp.StatusCode, loc)
	}
	_, body := e.do(c, "GET", "/login?next=%2F%09%2Fevil.example", nil)
	if strings.Contains(body, "evil.example") {
		t.Error("the login form carries the unsafe next")
	}
}

// While the page budget is taken (here by logins whose bodies never finish), pages get 503 at
// once and the MTA-STS policy and autoconfiguration are still served.
func TestMailServicesAnswerWhilePagesAreFlooded(t *testing.T) {
	e := newEnv(t)
	e.adm.slots = make(chan struct{}, 2)
	for range 2 {
		c, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /login HTTP/1.1\r\nHost: mail.example.test\r\nSec-Fetch-Site: same-origin\r\n"+
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\naddress=")
	}
	for len(e.adm.slots) < 2 {
		time.Sleep(5 * time.Millisecond) // wait for both handlers to hold their slot
	}
	c := e.client()
	if resp, _ := e.do(c, "GET", "/login", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("page while the budget is taken: %d, want 503", resp.StatusCode)
	}
	for _, tc := range []struct{ host, path string }{
		{"mta-sts.example.test", "/.well-known/mta-sts.txt"},
		{"autoconfig.example.test", "/mail/config-v1.1.xml?emailaddress=user@example.test"},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+tc.path, nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s%s while pages are flooded: %d", tc.host, tc.path, resp.StatusCode)
		}
	}
}
