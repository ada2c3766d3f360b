package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"mailstead/admin"
	"mailstead/mailauth"
	"mailstead/mailtest"
	"mailstead/store"
)

// TestBrowserAdmin drives the admin pages with headless Chromium (Debian package chromium):
// the setup wizard from the printed URL, a domain and an account added, the DNS table going from
// missing to ok once the records are published in the fake zone, the iPhone profile downloaded,
// and a queued message retried. Screenshots go to $MAILSTEAD_ARTIFACTS (default: a temp dir).
func TestBrowserAdmin(t *testing.T) {
	b := newChromium(t, 420, 900) // a phone-sized window

	// Outbound port 25 is "probed" against a loopback listener that greets like an MTA.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	go func() {
		for {
			c, err := probe.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "220 probe.test ESMTP\r\n")
			bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
	}()
	zone := mailtest.NewDNSZone(t)
	srv, setup, opts := startEmpty(t, zone, map[string]string{
		"admin.port25_probe": probe.Addr().String(),
		"acme.directory":     "https://127.0.0.1:1/directory", // a CA that is never there
	})
	st := srv.Store()
	base := "https://" + opts.Addr(443)

	bctx, artifacts, step, count := b.ctx, b.artifacts, b.step, b.count

	// 1. The wizard, from the URL the server printed.
	step("open setup", chromedp.Navigate(setup), chromedp.WaitVisible(chromedp.CSS(`#setup`)))
	shot(t, bctx, artifacts, "01-setup")
	step("fill setup",
		chromedp.SetValue(chromedp.CSS(`input[name=hostname]`), "mail.first.test"),
		chromedp.SetValue(chromedp.CSS(`input[name=domain]`), "first.test"),
		chromedp.SetValue(chromedp.CSS(`input[name=admin]`), "me@first.test"),
		chromedp.SetValue(chromedp.CSS(`input[name=password]`), "correct horse battery"),
		chromedp.SetValue(chromedp.CSS(`input[name=password2]`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`#setup button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#summary`)))
	shot(t, bctx, artifacts, "02-dns-missing")
	// The wizard ends on a green card: what works now, which records are left, nothing to restart.
	if count(`#welcome.done`) != 1 || !strings.Contains(mustHTML(t, bctx), "nothing to restart") ||
		strings.Contains(strings.ToLower(mustHTML(t, bctx)), "restart mailstead") {
		t.Errorf("the wizard's last page:\n%s", mustHTML(t, bctx))
	}
	if n := count(`.record[data-status="missing"]`); n < 15 || count(`.record[data-status="ok"]`) != 0 {
		t.Errorf("fresh DNS page: %d missing, %d ok", n, count(`.record[data-status="ok"]`))
	}

	// 2. Another domain and an account.
	step("add domain", chromedp.Navigate(base+"/admin/domains"),
		chromedp.SetValue(chromedp.CSS(`input[name=domain]`), "second.test"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/domains/add"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#summary`)))
	if ok, _ := st.IsLocalDomain(context.Background(), "second.test"); !ok {
		t.Error("second.test was not added")
	}
	step("add account", chromedp.Navigate(base+"/admin/accounts"),
		chromedp.SetValue(chromedp.CSS(`#add-account input[name=address]`), "bob@first.test"),
		chromedp.SetValue(chromedp.CSS(`#add-account input[name=password]`), "bob-password-1"),
		chromedp.Click(chromedp.CSS(`#add-account button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if _, err := st.Authenticate(context.Background(), "bob@first.test", "bob-password-1"); err != nil {
		t.Errorf("bob's account: %v", err)
	}
	shot(t, bctx, artifacts, "03-accounts")

	// 3. Publish every record in the fake zone; "Check again" turns the table green.
	ctx := context.Background()
	recs, haveDKIM, err := admin.RecordsFor(ctx, st, "first.test", []net.IP{net.ParseIP(opts.IP)},
		admin.StandardPorts.Offset(opts.PortOffset), func(ctx context.Context, d string) ([]admin.DKIMKey, error) {
			keys, err := mailauth.Keys(ctx, st, d)
			out := make([]admin.DKIMKey, len(keys))
			for i, k := range keys {
				out[i] = admin.DKIMKey{Selector: k.Selector, TXT: k.TXT()}
			}
			return out, err
		})
	if err != nil || !haveDKIM {
		t.Fatalf("records: %v (DKIM keys: %v)", err, haveDKIM)
	}
	for _, r := range recs {
		zone.Add(r.Zone())
	}
	step("recheck", chromedp.Navigate(base+"/admin/dns?domain=first.test"),
		chromedp.Click(chromedp.ID(`recheck`)), chromedp.WaitVisible(chromedp.CSS(`#summary`)))
	shot(t, bctx, artifacts, "04-dns-ok")
	if bad := count(`.record[data-status="missing"], .record[data-status="wrong"], .record[data-status="error"]`); bad != 0 {
		t.Errorf("%d records not ok after publishing:\n%s", bad, mustHTML(t, bctx))
	}
	checkable := 0
	for _, r := range recs {
		if r.Type != "CAA" { // the resolver has no CAA lookup yet
			checkable++
		}
	}
	if n := count(`.record[data-status="ok"]`); n != checkable {
		t.Errorf("%d records ok, want %d", n, checkable)
	}
	if n := count(`.checks li.ok`); n < 2 { // hostname resolves here, port 25 open
		t.Errorf("%d server checks ok, want at least 2", n)
	}

	// 4. The iPhone profile from the user page.
	dl := t.TempDir()
	done := make(chan string, 1)
	chromedp.ListenBrowser(bctx, func(ev any) {
		if e, ok := ev.(*cdpbrowser.EventDownloadProgress); ok && e.State == cdpbrowser.DownloadProgressStateCompleted {
			select {
			case done <- e.GUID:
			default:
			}
		}
	})
	events := true
	t.Log("browser: allow downloads")
	dctx, cancelD := context.WithTimeout(bctx, 10*time.Second)
	defer cancelD()
	if _, err := chromedp.CallBrowser(dctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl, EventsEnabled: &events}); err != nil {
		t.Fatal(err)
	}
	step("user page", chromedp.Navigate(base+"/me"), chromedp.WaitVisible(chromedp.ID(`qr`)))
	shot(t, bctx, artifacts, "05-me")
	step("download profile", chromedp.Click(chromedp.ID(`mobileconfig`)))
	select {
	case guid := <-done:
		data, err := os.ReadFile(filepath.Join(dl, guid))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "<key>EmailAddress</key><string>me@first.test</string>") ||
			!strings.Contains(string(data), fmt.Sprintf("<integer>%d</integer>", 993+opts.PortOffset)) {
			t.Errorf("downloaded profile:\n%s", data)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the profile download did not finish")
	}

	// 5. A message waiting in the queue (its domain's DNS fails) is retried from the queue page.
	zone.SetFailure("remote.test.", 2)
	if _, err := st.Deliver(ctx, &store.Delivery{MailFrom: "me@first.test",
		Data:   []byte("From: me@first.test\r\nTo: x@remote.test\r\nSubject: <b>hello</b>\r\n\r\nhi\r\n"),
		Remote: []store.RemoteRecipient{{Address: "x@remote.test"}}}); err != nil {
		t.Fatal(err)
	}
	q, _ := st.QueueList(ctx)
	if len(q) != 1 {
		t.Fatalf("queue: %v", q)
	}
	// As if an attempt had failed: next try in an hour.
	if err := st.QueueDefer(ctx, []int64{q[0].ID}, "451 4.4.3 remote.test: DNS lookup failed", "", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	before, _ := st.QueueEntryByID(ctx, q[0].ID)
	step("retry", chromedp.Navigate(base+"/admin/queue"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#q%d button.retry`, q[0].ID))),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	shot(t, bctx, artifacts, "06-queue")
	tctx, cancel := context.WithTimeout(bctx, 10*time.Second)
	defer cancel()
	flash, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`.flash`)))
	if !strings.Contains(flash, "1 message(s) will be tried again now") {
		t.Errorf("after retry: %q", flash)
	}
	// Due now, or already tried again by the running queue.
	after, err := st.QueueEntryByID(ctx, q[0].ID)
	if err == nil && !after.NextAttempt.Before(time.Now().Add(time.Minute)) && after.Attempts == before.Attempts {
		t.Errorf("retry did not make the message due: next %v, attempts %d", after.NextAttempt, after.Attempts)
	}
	if n := count(`.subject`); n != 1 || strings.Contains(mustHTML(t, bctx), "<b>hello</b>") {
		t.Error("queue page does not show the subject as text")
	}
}
