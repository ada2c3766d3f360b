package admin

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"mailstead/loginlimit"
	"mailstead/manage"
	"mailstead/store"
)

// sessionCookie carries the web session. The __Host- prefix makes browsers refuse it unless it
// is Secure, has Path=/ and no Domain, so no other host can set or read it.
const sessionCookie = "__Host-mailstead"

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

type session struct {
	account store.Account
	token   string
}

func (a *Admin) session(r *http.Request) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, false
	}
	acct, err := a.st.WebSession(r.Context(), c.Value)
	if err != nil {
		return nil, false
	}
	return &session{account: acct, token: c.Value}, true
}

func setSessionCookie(w http.ResponseWriter, token string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// requireUser lets a request through with any account's session. Without one, a page view is
// sent to the login page and anything else gets 401.
func (a *Admin) requireUser(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := a.session(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "Log in first.", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	})
}

// requireAdmin is requireUser for accounts with the admin flag; others get 403.
func (a *Admin) requireAdmin(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return a.requireUser(func(w http.ResponseWriter, r *http.Request, s *session) {
		if !s.account.IsAdmin {
			http.Error(w, "This page is for administrators.", http.StatusForbidden)
			return
		}
		h(w, r, s)
	})
}

// remoteIP is the client's address, for the failed-login line fail2ban reads and the login budget.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// begin reserves a failed attempt of a kind in the shared login budget; over the budget it
// answers 429 and reports false.
func (a *Admin) begin(w http.ResponseWriter, r *http.Request, kind loginlimit.Kind, account string) (*loginlimit.Attempt, bool) {
	att, err := a.logins.Begin(kind, remoteIP(r), account)
	if err != nil {
		w.Header().Set("Retry-After", "900")
		return nil, false
	}
	return att, true
}

func (a *Admin) home(w http.ResponseWriter, r *http.Request) {
	if tok, _ := manage.SettingSetupToken.Value(r.Context(), a.st); tok != "" {
		a.render(w, r, "message.html", nil, pageData{Title: "Not set up yet",
			Data: "This server is not set up yet. Open the setup link the server printed when it started."})
		return
	}
	s, ok := a.session(r)
	switch {
	case !ok:
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	case s.account.IsAdmin:
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/me", http.StatusSeeOther)
	}
}

// safeNext returns next if it is a path on this site, else "". Browsers read "//evil.example",
// "/\\evil.example" and "/\t/evil.example" (they drop tabs and newlines, WHATWG URL §4.4) as
// other hosts, so a backslash, a control character or a second leading slash disqualifies it.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return ""
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == ' ' {
			return ""
		}
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return next
}

func (a *Admin) loginForm(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, "login.html", nil, pageData{Title: "Log in", Data: map[string]string{"Next": safeNext(r.URL.Query().Get("next"))}})
}

func (a *Admin) loginSubmit(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	address := strings.ToLower(r.PostFormValue("address"))
	fail := func(status int, msg string) {
		w.WriteHeader(status)
		a.render(w, r, "login.html", nil, pageData{Title: "Log in", Error: msg,
			Data: map[string]string{"Next": next, "Address": r.PostFormValue("address")}})
	}
	// The failure is counted before the password is hashed, so a burst cannot pass the limit.
	attempt, ok := a.begin(w, r, loginlimit.Web, address)
	if !ok {
		fail(http.StatusTooManyRequests, "Too many failed attempts. Wait a few minutes and try again.")
		return
	}
	acct, err := a.st.AuthenticatePrimary(r.Context(), r.PostFormValue("address"), r.PostFormValue("password"))
	switch {
	case errors.Is(err, store.ErrAuthFailed):
		attempt.Failed()
		a.logins.LogFailure(a.log, "admin", remoteIP(r), address)
		fail(http.StatusUnauthorized, "Wrong address or password.")
		return
	case err != nil:
		attempt.Cancel()
		if !errors.Is(err, store.ErrPasswordBusy) {
			a.log.Error("login", "err", err)
		}
		w.Header().Set("Retry-After", "5")
		fail(http.StatusServiceUnavailable, "The server is busy. Try again in a moment.")
		return
	}
	attempt.Succeeded()
	a.startSession(w, r, acct, next)
}

func (a *Admin) startSession(w http.ResponseWriter, r *http.Request, acct store.Account, next string) {
	token, err := a.st.CreateWebSession(r.Context(), acct.ID, sessionTTL)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	setSessionCookie(w, token, int(sessionTTL.Seconds()))
	if next == "" {
		next = "/me"
		if acct.IsAdmin {
			next = "/admin/"
		}
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (a *Admin) logout(w http.ResponseWriter, r *http.Request) {
	if s, ok := a.session(r); ok {
		a.st.EndWebSession(r.Context(), s.token)
	}
	setSessionCookie(w, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// setupToken checks the wizard's one-time token: 410 once setup is done, 403 for a wrong token.
func (a *Admin) setupToken(w http.ResponseWriter, r *http.Request, given string) bool {
	attempt, ok := a.begin(w, r, loginlimit.SetupToken, "")
	if !ok {
		http.Error(w, "Too many failed attempts. Wait a few minutes and try again.", http.StatusTooManyRequests)
		return false
	}
	want, err := manage.SettingSetupToken.Value(r.Context(), a.st)
	if err != nil {
		attempt.Cancel()
		a.serverError(w, r, err)
		return false
	}
	if want == "" {
		attempt.Cancel()
		w.WriteHeader(http.StatusGone)
		a.render(w, r, "message.html", nil, pageData{Title: "Setup is done",
			Data: "This server is already set up; the setup link works only once. Log in instead."})
		return false
	}
	if subtle.ConstantTimeCompare([]byte(given), []byte(want)) != 1 {
		attempt.Failed()
		a.logins.LogFailure(a.log, "admin", remoteIP(r), "(setup token)")
		w.WriteHeader(http.StatusForbidden)
		a.render(w, r, "message.html", nil, pageData{Title: "Wrong setup link",
			Data: "This setup link is not valid. Use the exact link the server printed when it started."})
		return false
	}
	attempt.Succeeded()
	return true
}

type setupForm struct {
	Token, Hostname, Domain, Admin string
}

func (a *Admin) setupForm(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if !a.setupToken(w, r, tok) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	f := setupForm{Token: tok}
	if h, _ := manage.SettingHostname.Value(r.Context(), a.st); h != "" {
		f.Hostname = h
	}
	a.render(w, r, "setup.html", nil, pageData{Title: "Set up mailstead", Data: f})
}

func (a *Admin) setupSubmit(w http.ResponseWriter, r *http.Request) {
	f := setupForm{Token: r.PostFormValue("token"), Hostname: strings.TrimSpace(strings.ToLower(r.PostFormValue("hostname"))),
		Domain: strings.TrimSpace(r.PostFormValue("domain")), Admin: strings.TrimSpace(r.PostFormValue("admin"))}
	if !a.setupToken(w, r, f.Token) {
		return
	}
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	again := func(msg string) {
		w.WriteHeader(http.StatusBadRequest)
		a.render(w, r, "setup.html", nil, pageData{Title: "Set up mailstead", Error: msg, Data: f})
	}
	if pw != pw2 {
		again("The two passwords differ.")
		return
	}
	acct, err := a.ops.Setup(r.Context(), manage.SetupParams{Hostname: f.Hostname, Domain: f.Domain, Admin: f.Admin, Password: pw})
	if err != nil {
		var ie *manage.InvalidError
		switch {
		case errors.As(err, &ie):
			again(setupMessage(ie, f.Domain))
		case errors.Is(err, store.ErrAlreadySetUp):
			again("This server is already set up. Log in instead.")
		default:
			a.serverError(w, r, err)
		}
		return
	}
	domain, _ := store.CanonicalDomain(f.Domain)
	a.startSession(w, r, acct, "/admin/dns?domain="+url.QueryEscape(domain)+"&welcome=1")
}

// setupMessage words a refused wizard answer for the form.
func setupMessage(ie *manage.InvalidError, domain string) string {
	switch ie.Field {
	case "domain":
		return "The domain is not a valid domain name."
	case "hostname":
		return "The hostname must be a full name such as mail." + domain + "."
	case "admin":
		return "The admin address must be an address at " + domain + ", such as you@" + domain + "."
	}
	return strings.ToUpper(ie.Reason[:1]) + ie.Reason[1:] + "."
}
