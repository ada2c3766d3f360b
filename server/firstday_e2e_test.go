package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailstead/mailauth"
	"mailstead/mailtest"
	"mailstead/mailtest/testkit"
	"mailstead/server"
)

// TestServeTightensDataDirectory: a data directory that exists with mode 0755 before the first
// serve ends 0700, with every file in it 0600.
func TestServeTightensDataDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o755)
	os.Chmod(dir, 0o755)
	srv, err := server.New(server.Options{DataDir: dir, Bind: mailtest.RandomLoopbackIP(), EphemeralPorts: true,
		ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	testkit.CheckPrivateDir(t, dir)
}

var devPassword = regexp.MustCompile(`dev mode: account dev@mailstead\.test with password (\S+)`)

// TestDevModeCreatesNothingWhenItCannotListen: with a port taken, serve --dev fails and leaves
// no account behind; the next start, with the port free, makes the account and prints its
// password.
func TestDevModeCreatesNothingWhenItCannotListen(t *testing.T) {
	ip, dir := mailtest.RandomLoopbackIP(), t.TempDir()
	taken, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(993+mailtest.DefaultPortOffset)))
	if err != nil {
		t.Skipf("cannot take the IMAPS port: %v", err)
	}
	opts := server.Options{DataDir: dir, Dev: true, Bind: ip, PortOffset: mailtest.DefaultPortOffset, ShutdownGrace: 5 * time.Second}
	var out bytes.Buffer
	opts.Out = &out
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start with port 993 taken: %v", err)
	}
	if strings.Contains(out.String(), "password") {
		t.Errorf("printed %q after failing", out.String())
	}
	st, err := server.OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accts, _ := st.Accounts(context.Background()); len(accts) != 0 {
		t.Errorf("a failed start left accounts %v", accts)
	}
	st.Close()

	taken.Close()
	srv, password, _ := startDev(t, opts)
	if _, err := srv.Store().Authenticate(context.Background(), "dev@mailstead.test", password); err != nil {
		t.Errorf("printed password does not log in: %v", err)
	}
}

// startDev starts a server as serve --dev does and returns it with the password it printed and
// everything it printed.
func startDev(t *testing.T, opts server.Options) (*server.Server, string, string) {
	t.Helper()
	var out bytes.Buffer
	opts.Out = &out
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	m := devPassword.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no password printed: %q", out.String())
	}
	return srv, m[1], out.String()
}

// TestBrowserOpensDevURLs: every URL serve --dev prints opens in Chromium (Debian package
// chromium): after logging in with the printed password each web page shows its content, and
// the metrics URL shows Prometheus text.
func TestBrowserOpensDevURLs(t *testing.T) {
	b := newChromium(t, 1200, 900)
	_, password, printed := startDev(t, server.Options{DataDir: t.TempDir(), Dev: true, Bind: mailtest.RandomLoopbackIP(),
		PortOffset: mailtest.DefaultPortOffset, ShutdownGrace: 5 * time.Second})
	urls := regexp.MustCompile(`(?m)^  (https?://\S+)`).FindAllStringSubmatch(printed, -1)
	if len(urls) < 10 {
		t.Fatalf("dev output lacks the URLs:\n%s", printed)
	}
	if strings.Contains(printed, ":443/") {
		t.Errorf("dev output names port 443:\n%s", printed)
	}
	for _, u := range urls {
		u := u[1]
		if strings.HasSuffix(u, "/login") {
			b.step("log in", chromedp.Navigate(u),
				chromedp.SetValue(chromedp.CSS(`input[name=address]`), "dev@mailstead.test"),
				chromedp.SetValue(chromedp.CSS(`input[name=password]`), password),
				chromedp.Click(chromedp.CSS(`form[action="/login"] button`)),
				chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"]`)))
			continue
		}
		b.step("open "+u, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS(`body`)))
		if strings.HasSuffix(u, "/metrics") {
			if text := evalJS[string](b, "document.body.innerText"); !strings.Contains(text, "# HELP mailstead_") {
				t.Errorf("%s shows %.200q", u, text)
			}
			continue
		}
		if got := evalJS[string](b, "location.href"); got != u {
			t.Errorf("%s ended at %s", u, got)
		}
		if b.count(`main`) != 1 || b.count(`form[action="/login"]`) != 0 {
			b.shot("dev-url-failed")
			t.Errorf("%s does not show its page:\n%.500s", u, b.html())
		}
	}
	b.shot("dev-admin-last-page")
}

// TestAccountGuardRailsThroughControlSocket: with the server running, management commands go
// through its control socket and meet the same rules: the only admin stays, mail needs --force.
func TestAccountGuardRailsThroughControlSocket(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	ctx := context.Background()
	if err := srv.Store().SetAdmin(ctx, "alice@example.test", true); err != nil {
		t.Fatal(err)
	}
	if err := send(t, srv.Opts.Addr(25), "x@remote.test", []string{"alice@example.test"}, []byte("From: x@remote.test\r\n\r\nhi\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	call := func(args ...string) (string, error) {
		return server.Call(srv.Opts.Dir, server.Request{Command: "account", Args: args})
	}
	if _, err := call("admin", "alice@example.test", "off"); err == nil || !strings.Contains(err.Error(), "only admin") {
		t.Errorf("demote the only admin: %v", err)
	}
	if _, err := call("remove", "alice@example.test", "--force"); err == nil || !strings.Contains(err.Error(), "only admin") {
		t.Errorf("remove the only admin: %v", err)
	}
	if out, err := call("add", "--admin", "carol@example.test"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("add without a password: %q %v", out, err)
	}
	if _, err := server.Call(srv.Opts.Dir, server.Request{Command: "account", Args: []string{"add", "carol@example.test", "--admin"},
		Stdin: "carol password 1\n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := call("remove", "alice@example.test"); err == nil || !strings.Contains(err.Error(), "holds 1 message(s)") ||
		!strings.Contains(err.Error(), "--force") {
		t.Errorf("remove alice holding mail: %v", err)
	}
	if _, err := srv.Store().AccountByAddress(ctx, "alice@example.test"); err != nil {
		t.Fatal("alice removed without --force")
	}
	if out, err := call("remove", "alice@example.test", "--force"); err != nil || !strings.Contains(out, "1 message(s)") {
		t.Errorf("remove --force: %q %v", out, err)
	}
}

// TestBrowserOverviewAndDNSOnPhone: in Chromium at phone width (390 px) the overview is the
// admin landing page and links each area to its page; the DNS page has no horizontal scroll;
// a DMARC p=none shows as weaker; and "Copy value" on the RSA DKIM record copies one unquoted
// string, the key exactly as published. Screenshots are kept as artefacts.
func TestBrowserOverviewAndDNSOnPhone(t *testing.T) {
	b := newChromium(t, 390, 844)
	zone := mailtest.NewDNSZone(t)
	zone.Add("remote.test. 300 IN A 127.0.0.1")
	srv := mailtest.Start(t, mailtest.Options{DNS: zone.Addr(), Settings: map[string]string{"admin.port25_probe": "127.0.0.1:1"}})
	ctx := context.Background()
	if err := srv.Store().SetAdmin(ctx, "alice@example.test", true); err != nil {
		t.Fatal(err)
	}
	zone.AddTXT("_dmarc.example.test.", "v=DMARC1; p=none")
	base := "https://" + srv.Opts.Addr(443)

	// A desktop window cannot be made narrower than about 500 px: emulate the phone's viewport.
	b.step("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.step("log in", chromedp.Navigate(base+"/login"),
		chromedp.SetValue(chromedp.CSS(`input[name=address]`), "alice@example.test"),
		chromedp.SetValue(chromedp.CSS(`input[name=password]`), "alice-password"),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#overview`)))
	b.shot("10-overview-390px")
	if got := evalJS[string](b, "location.pathname"); got != "/admin/" {
		t.Errorf("landing page after login is %s, want the overview", got)
	}
	for _, link := range []string{"/admin/dns?domain=example.test", "/admin/certificates", "/admin/queue", "/admin/events"} {
		if b.count(fmt.Sprintf(`#overview a[href=%q]`, link)) != 1 {
			t.Errorf("overview does not link to %s:\n%s", link, b.html())
		}
	}
	if !strings.Contains(evalJS[string](b, "document.querySelector('#overview').innerText"), "0 message(s)") {
		t.Errorf("overview lacks the queue length:\n%s", b.html())
	}

	b.step("open DNS", chromedp.Navigate(base+"/admin/dns?domain=example.test"), chromedp.WaitVisible(chromedp.CSS(`#summary`)))
	if b.count(`#no-dkim`) == 1 {
		b.step("make DKIM keys", chromedp.Click(chromedp.CSS(`#no-dkim button`)), chromedp.WaitVisible(chromedp.CSS(`#summary`)))
		b.step("back to DNS", chromedp.Navigate(base+"/admin/dns?domain=example.test"), chromedp.WaitVisible(chromedp.CSS(`#summary`)))
	}
	if w := evalJS[[]int](b, "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"); len(w) != 2 || w[0] > w[1] {
		wide := evalJS[[]string](b, `Array.from(document.querySelectorAll("body *")).filter(e =>
			e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 || e.scrollWidth > e.clientWidth + 1).slice(0, 8).map(e =>
			e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right) + " " + (e.textContent || "").slice(0, 60))`)
		t.Errorf("DNS page scrolls sideways at 390 px: scrollWidth, clientWidth = %v; too wide: %q", w, wide)
	}
	b.shot("11-dns-390px") // after measuring: a full-page screenshot resizes the viewport
	if b.count(`.record[data-status="weaker"][data-name="_dmarc.example.test."]`) != 1 ||
		!strings.Contains(evalJS[string](b, `document.querySelector('.record[data-name="_dmarc.example.test."]').innerText`), "weaker") {
		t.Errorf("DMARC p=none is not shown as weaker:\n%s", b.html())
	}

	// What the button hands to the clipboard, whichever way app.js reaches it.
	evalJS[bool](b, `(() => {
		Object.defineProperty(navigator, "clipboard", {value: {writeText: (t) => { window.copied = t; return Promise.resolve(); }}});
		document.execCommand = () => { window.copied = document.querySelector("textarea[readonly]").value; return true; };
		return true; })()`)
	rsa := `.record[data-type="TXT"][data-name$="._domainkey.example.test."]`
	names := evalJS[[]string](b, `Array.from(document.querySelectorAll('`+rsa+`')).map(r => r.dataset.name)`)
	copied := ""
	for _, name := range names {
		b.step("copy "+name, chromedp.Click(chromedp.CSS(fmt.Sprintf(`.record[data-name=%q] button.copy`, name))))
		if c := evalJS[string](b, "window.copied || ''"); strings.Contains(c, "k=rsa") {
			copied = c
		}
	}
	if copied == "" || strings.Contains(copied, `"`) || !strings.HasPrefix(copied, "v=DKIM1;") || len(copied) <= 255 {
		t.Fatalf("Copy value of the RSA DKIM record gave %q (records %v)", copied, names)
	}
	txts, err := dnsTXTOfRecords(srv, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(txts, copied) {
		t.Errorf("copied %q, which is none of the DKIM keys %q", copied, txts)
	}
}

// dnsTXTOfRecords returns the TXT values of the domain's DKIM keys as the queue signs with them.
func dnsTXTOfRecords(srv *mailtest.Server, domain string) ([]string, error) {
	keys, err := mailauth.Keys(context.Background(), srv.Store(), domain)
	var out []string
	for _, k := range keys {
		out = append(out, k.TXT())
	}
	return out, err
}

// TestUnwritableDataDirectorySaysPermissionDenied: a user who may not write the data directory
// is told "permission denied", not SQLite's "no such file or directory", and "open data
// directory" comes once (the path twice: the directory, then its database file). The command runs as a user other than the directory's owner (nobody, when
// the tests run as root).
func TestUnwritableDataDirectorySaysPermissionDenied(t *testing.T) {
	bin := mailtest.Binary(t)
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o755)
	cmd := exec.Command(bin, "account", "list", "--data", dir)
	if os.Geteuid() == 0 {
		// nobody must reach the binary and the directory: open the path to them.
		for p := dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
			os.Chmod(p, 0o755)
		}
		own := filepath.Join(filepath.Dir(dir), "mailstead")
		if b, err := os.ReadFile(bin); err != nil || os.WriteFile(own, b, 0o755) != nil {
			t.Fatal("copy the binary", err)
		}
		cmd = exec.Command(own, "account", "list", "--data", dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		os.Chmod(dir, 0o555)
	}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied") || strings.Count(string(out), dir) != 2 ||
		strings.Contains(string(out), "no such file") {
		t.Errorf("account list on an unwritable directory: %v\n%s", err, out)
	}
}
