package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailstead/mailtest"
)

// chromium is a headless Chromium (Debian package chromium) that talks only to loopback, with
// screenshots saved to $MAILSTEAD_ARTIFACTS (default: a temp dir) as test artefacts.
type chromium struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
}

// newChromium starts Chromium with a window of width×height CSS pixels (skipped without
// MAILSTEAD_INTEROP=1, failed without chromium when it is set).
func newChromium(t *testing.T, width, height int) *chromium {
	t.Helper()
	exe := mailtest.RequireTool(t, "chromium")
	artifacts := os.Getenv("MAILSTEAD_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true), chromedp.Flag("no-proxy-server", true),
		// Every name lookup fails: the browser only ever talks to our loopback IP.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.*"),
		chromedp.Flag("no-default-browser-check", true), chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-domain-reliability", true), chromedp.Flag("no-pings", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height),
	)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil { // starts the browser, without a timeout on its context
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { t.Logf("screenshots in %s", artifacts) })
	return &chromium{t: t, ctx: bctx, artifacts: artifacts}
}

// step runs actions, failing the test (with a screenshot) when they do not finish in 30 s.
func (b *chromium) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.t.Logf("browser: %s", what)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + strings.Map(func(r rune) rune {
			if r == ' ' || r == '/' || r == ':' {
				return '-'
			}
			return r
		}, what))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// count is the number of elements matching the CSS selector sel.
func (b *chromium) count(sel string) int {
	b.t.Helper()
	return evalJS[int](b, fmt.Sprintf("document.querySelectorAll(%q).length", sel))
}

// evalJS evaluates a JavaScript expression in the page.
func evalJS[T any](b *chromium, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *chromium) shot(name string) { shot(b.t, b.ctx, b.artifacts, name) }

func (b *chromium) html() string { return mustHTML(b.t, b.ctx) }

func mustHTML(t *testing.T, ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	return html
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}
