package admin

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strconv"

	qrcode "github.com/skip2/go-qrcode"

	"mailstead/loginlimit"
	"mailstead/store"
)

type clientSetting struct {
	Protocol, Host, Security, Username string
	Port                               int
}

type meView struct {
	Address      string
	AppPasswords any
	NewPassword  string
	NewName      string
	Settings     []clientSetting
	ProfileURL   string       // what the QR code opens on the phone
	QR           template.URL // data: URL of the QR code PNG, made here (html/template refuses data: URLs otherwise)
	Junk         junkView
}

// profileURL is the address of the public mobileconfig for the phone, on the mail hostname (the
// name the certificate is for) and the HTTPS port.
func (a *Admin) profileURL(r *http.Request, address string) string {
	host := a.hostname(r.Context())
	if a.cfg.Ports.HTTPS != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(a.cfg.Ports.HTTPS))
	}
	return "https://" + host + "/mail/mailstead.mobileconfig?emailaddress=" + url.QueryEscape(address)
}

func (a *Admin) meView(r *http.Request, s *session) (meView, error) {
	ctx := r.Context()
	aps, err := a.st.AppPasswords(ctx, s.account.ID)
	if err != nil {
		return meView{}, err
	}
	host := a.hostname(ctx)
	p := a.cfg.Ports
	v := meView{Address: s.account.Address, AppPasswords: aps, ProfileURL: a.profileURL(r, s.account.Address)}
	if v.Junk, err = a.junkView(ctx, s.account.ID); err != nil {
		return meView{}, err
	}
	v.Settings = []clientSetting{
		{"IMAP (incoming)", host, "SSL/TLS", s.account.Address, p.IMAPS},
		{"SMTP (outgoing)", host, "SSL/TLS", s.account.Address, p.Submissions},
		{"IMAP, if SSL/TLS is not offered", host, "STARTTLS", s.account.Address, p.IMAP},
		{"SMTP, if SSL/TLS is not offered", host, "STARTTLS", s.account.Address, p.Submission},
		{"POP3 (instead of IMAP)", host, "SSL/TLS", s.account.Address, p.POP3S},
	}
	png, err := qrcode.Encode(v.ProfileURL, qrcode.Medium, 256)
	if err == nil {
		v.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	}
	return v, nil
}

func (a *Admin) mePage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := a.meView(r, s)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if name, pw, ok := a.fresh.take(s.token); ok {
		v.NewPassword, v.NewName = pw, name
		w.Header().Set("Cache-Control", "no-store") // the password must not stay in a cache
	}
	a.render(w, r, "me.html", s, pageData{Title: "Your account", Nav: "me", Data: v})
}

func (a *Admin) meChangePassword(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	cur, pw, pw2 := r.PostFormValue("current"), r.PostFormValue("password"), r.PostFormValue("password2")
	attempt, ok := a.begin(w, r, loginlimit.Web, s.account.Address)
	if !ok {
		a.done(w, r, "/me", "", errors.New("too many failed attempts; wait a few minutes"))
		return
	}
	if _, err := a.st.AuthenticatePrimary(ctx, s.account.Address, cur); err != nil {
		if !errors.Is(err, store.ErrAuthFailed) {
			attempt.Cancel()
			a.done(w, r, "/me", "", errors.New("the server is busy; try again in a moment"))
			return
		}
		attempt.Failed()
		a.logins.LogFailure(a.log, "admin", remoteIP(r), s.account.Address)
		a.done(w, r, "/me", "", errors.New("the current password is wrong"))
		return
	}
	attempt.Succeeded()
	if pw != pw2 {
		a.done(w, r, "/me", "", errors.New("the two new passwords differ"))
		return
	}
	// Other browsers logged in as this account must log in again.
	if err := a.ops.SetPassword(ctx, s.account.Address, pw, s.token); err != nil {
		a.done(w, r, "/me", "", err)
		return
	}
	a.done(w, r, "/me", "Password changed. Mail apps that use it need the new one; app passwords keep working.", nil)
}

// meAddAppPassword makes an app password and redirects to /me, which shows it once at the top
// (post/redirect/get: reloading the page shows the page, it makes no other password).
func (a *Admin) meAddAppPassword(w http.ResponseWriter, r *http.Request, s *session) {
	pw, ap, err := a.ops.AddAppPassword(r.Context(), s.account.ID, r.PostFormValue("name"))
	if err != nil {
		a.done(w, r, "/me", "", err)
		return
	}
	a.fresh.put(s.token, ap.Name, pw)
	http.Redirect(w, r, "/me#new-app-password", http.StatusSeeOther)
}

func (a *Admin) meRemoveAppPassword(w http.ResponseWriter, r *http.Request, s *session) {
	id, _ := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	err := a.ops.RemoveAppPassword(r.Context(), s.account.ID, id)
	a.done(w, r, "/me", "Revoked the app password; the app using it can no longer log in.", err)
}

func (a *Admin) meMobileconfig(w http.ResponseWriter, r *http.Request, s *session) {
	a.serveMobileconfig(w, r, s.account.Address)
}

func (a *Admin) meQR(w http.ResponseWriter, r *http.Request, s *session) {
	png, err := qrcode.Encode(a.profileURL(r, s.account.Address), qrcode.Medium, 256)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(png)
}
