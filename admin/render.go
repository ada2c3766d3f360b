package admin

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// pageData is what every template gets. Values are escaped by html/template according to where
// they appear; nothing is marked safe, so an address or subject from mail is always text.
type pageData struct {
	Title  string
	User   *sessionView
	Nav    string // active section
	Flash  string
	Error  string
	Data   any
	Public bool // no navigation (login, setup)
}

type sessionView struct {
	Address string
	IsAdmin bool
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"bytes": func(n int64) string {
		switch {
		case n == 0:
			return "unlimited"
		case n >= 1<<30 && n%(1<<30) == 0:
			return fmt.Sprintf("%d GiB", n>>30)
		case n >= 1<<20:
			return fmt.Sprintf("%d MiB", n>>20)
		}
		return fmt.Sprintf("%d bytes", n)
	},
	"size": func(n int64) string {
		if n >= 1<<20 {
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		}
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	},
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
	"port": portString,
}

func (a *Admin) parseTemplates() error {
	a.pages = map[string]*template.Template{}
	names, err := fs.Glob(webFS, "web/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimPrefix(n, "web/")
		if base == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/layout.html", n)
		if err != nil {
			return fmt.Errorf("admin template %s: %w", base, err)
		}
		a.pages[base] = t
	}
	return nil
}

// flashCookie carries a one-line result of a POST across its redirect.
const flashCookie = "__Host-flash"

// render writes a page. The flash message of the previous POST, if any, is shown once.
func (a *Admin) render(w http.ResponseWriter, r *http.Request, name string, s *session, d pageData) {
	t := a.pages[name]
	if t == nil {
		a.serverError(w, r, fmt.Errorf("no template %s", name))
		return
	}
	if s != nil {
		d.User = &sessionView{Address: s.account.Address, IsAdmin: s.account.IsAdmin}
	}
	if c, err := r.Cookie(flashCookie); err == nil && d.Flash == "" && d.Error == "" {
		if v, err := url.QueryUnescape(c.Value); err == nil {
			if msg, ok := strings.CutPrefix(v, "!"); ok {
				d.Error = msg
			} else {
				d.Flash = v
			}
		}
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		a.serverError(w, r, fmt.Errorf("template %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// done redirects after a POST with a message for the next page; err, if set, is the message.
func (a *Admin) done(w http.ResponseWriter, r *http.Request, to, msg string, err error) {
	if err != nil {
		msg = "!" + err.Error()
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (a *Admin) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("admin page", "path", r.URL.Path, "err", err)
	http.Error(w, "Internal error; the server log has the details.", http.StatusInternalServerError)
}
