package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"mailstead/manage"
	"mailstead/message"
	"mailstead/settings"
	"mailstead/store"
)

// dashboard is the admin landing page: what works and what does not at a glance, each line
// linking to the page that has the details.
func (a *Admin) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := a.overview(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, "overview.html", s, pageData{Title: "Overview", Nav: "overview", Data: v})
}

type dnsView struct {
	Ports     Ports // what the wizard's end tells clients to use
	Domain    string
	Domains   []string
	Welcome   bool
	Hostname  string
	NoDKIM    bool
	NoIPs     bool
	Groups    []recordGroup
	Server    []ServerCheck
	Counts    map[string]int
	CheckedAt time.Time
}

type recordGroup struct {
	Name    string
	Records []Checked
}

// dnsReport builds the records of domain and checks each against DNS, plus the server checks.
func (a *Admin) dnsReport(ctx context.Context, domain string, fresh bool) (dnsView, error) {
	v := dnsView{Ports: a.cfg.Ports, Domain: domain, Hostname: a.hostname(ctx), Counts: map[string]int{}, CheckedAt: time.Now()}
	ips := a.publicIPs(ctx)
	v.NoIPs = len(ips) == 0
	recs, haveDKIM, err := RecordsFor(ctx, a.st, domain, ips, a.cfg.Ports, a.cfg.DKIMKeys)
	if err != nil {
		return v, err
	}
	v.NoDKIM = !haveDKIM
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var checked []Checked
	done := make(chan struct{})
	go func() {
		checked = checkAll(ctx, a.cfg.Resolver, ips, recs)
		close(done)
	}()
	v.Server = append(v.Server, hostnameCheck(ctx, a.cfg.Resolver, v.Hostname, ips))
	if a.cfg.Dev {
		v.Server = append(v.Server, ServerCheck{Name: "Outbound port 25", Status: StatusUnchecked, Detail: "dev mode: no mail leaves this machine"})
	} else {
		target, _ := SettingPort25Probe.String(ctx, a.st)
		v.Server = append(v.Server, a.port25.get(ctx, a.cfg.Resolver, target, fresh))
	}
	v.Server = append(v.Server, a.certCheck(v.Hostname))
	<-done
	for _, c := range checked {
		if len(v.Groups) == 0 || v.Groups[len(v.Groups)-1].Name != c.Group {
			v.Groups = append(v.Groups, recordGroup{Name: c.Group})
		}
		g := &v.Groups[len(v.Groups)-1]
		g.Records = append(g.Records, c)
		v.Counts[c.Status]++
	}
	return v, nil
}

func (a *Admin) certCheck(host string) ServerCheck {
	c := ServerCheck{Name: "Certificate for " + host, FixURL: "/admin/certificates"}
	if a.cfg.Certs == nil {
		c.Status, c.Detail = StatusUnchecked, "no certificate manager"
		return c
	}
	st := a.cfg.Certs()
	switch {
	case st.Source == "self-signed":
		c.Status, c.Detail = StatusMissing, "serving a self-signed certificate until one is issued"
		if st.LastError != "" {
			c.Detail += "; last error: " + st.LastError
		}
		c.Fix = "Certificates are ordered once the hostname resolves to this server and port 443 is reachable."
	case time.Until(st.NotAfter) < 7*24*time.Hour:
		c.Status, c.Detail = StatusWrong, "expires "+st.NotAfter.UTC().Format(time.DateOnly)
	default:
		c.Status, c.Detail = StatusOK, st.Source+" certificate from "+st.Issuer+", valid until "+st.NotAfter.UTC().Format(time.DateOnly)
	}
	return c
}

func (a *Admin) domainNames(ctx context.Context) ([]string, error) {
	ds, err := a.st.Domains(ctx)
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	return names, err
}

func (a *Admin) pickDomain(r *http.Request) (string, []string, error) {
	names, err := a.domainNames(r.Context())
	if err != nil {
		return "", nil, err
	}
	want := r.URL.Query().Get("domain")
	for _, n := range names {
		if n == want {
			return n, names, nil
		}
	}
	if len(names) > 0 {
		return names[0], names, nil
	}
	return "", names, nil
}

func (a *Admin) dnsPage(w http.ResponseWriter, r *http.Request, s *session) {
	domain, names, err := a.pickDomain(r)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if domain == "" {
		a.done(w, r, "/admin/domains", "Add a domain first.", nil)
		return
	}
	v, err := a.dnsReport(r.Context(), domain, r.URL.Query().Get("fresh") == "1")
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	v.Domains, v.Welcome = names, r.URL.Query().Get("welcome") == "1"
	a.render(w, r, "dns.html", s, pageData{Title: "DNS records for " + domain, Nav: "dns", Data: v})
}

func (a *Admin) dnsZone(w http.ResponseWriter, r *http.Request, s *session) {
	domain, _, err := a.pickDomain(r)
	if err != nil || domain == "" {
		http.Error(w, "no such domain", http.StatusNotFound)
		return
	}
	recs, _, err := RecordsFor(r.Context(), a.st, domain, a.publicIPs(r.Context()), a.cfg.Ports, a.cfg.DKIMKeys)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+domain+`.zone"`)
	fmt.Fprint(w, ZoneFile("DNS records for "+domain+" (mailstead)", recs))
}

type domainView struct {
	Name     string
	Created  time.Time
	Accounts int
	DKIM     []DKIMKey
}

func (a *Admin) domainsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ds, err := a.st.Domains(ctx)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	accts, _ := a.st.Accounts(ctx)
	var views []domainView
	for _, d := range ds {
		v := domainView{Name: d.Name, Created: d.Created}
		for _, ac := range accts {
			if ac.DomainID == d.ID {
				v.Accounts++
			}
		}
		if a.cfg.DKIMKeys != nil {
			v.DKIM, _ = a.cfg.DKIMKeys(ctx, d.Name)
		}
		views = append(views, v)
	}
	a.render(w, r, "domains.html", s, pageData{Title: "Domains", Nav: "domains", Data: views})
}

func (a *Admin) domainAdd(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := a.ops.AddDomain(r.Context(), r.PostFormValue("domain"), s.account.Address)
	if err != nil {
		a.done(w, r, "/admin/domains", "", err)
		return
	}
	a.done(w, r, "/admin/dns?domain="+url.QueryEscape(d.Name), "Added "+d.Name+". Now publish these DNS records.", nil)
}

func (a *Admin) domainRemove(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PostFormValue("domain")
	err := a.ops.RemoveDomain(r.Context(), name)
	a.done(w, r, "/admin/domains", "Removed "+name+".", err)
}

func (a *Admin) domainDKIM(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PostFormValue("domain")
	if err := a.ops.EnsureDKIM(r.Context(), name); err != nil {
		a.done(w, r, "/admin/domains", "", fmt.Errorf("cannot make DKIM keys for %s: %w", name, err))
		return
	}
	a.done(w, r, "/admin/dns?domain="+url.QueryEscape(name), "DKIM keys ready for "+name+".", nil)
}

func (a *Admin) accountsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	accts, err := a.st.Accounts(ctx)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	names, _ := a.domainNames(ctx)
	jv, err := a.junkViews(ctx, accts)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, "accounts.html", s, pageData{Title: "Accounts", Nav: "accounts",
		Data: map[string]any{"Accounts": accts, "Domains": names, "Self": s.account.Address, "Junk": jv}})
}

func (a *Admin) accountAdd(w http.ResponseWriter, r *http.Request, s *session) {
	q, err := parseQuota(r.PostFormValue("quota"))
	var acct store.Account
	if err == nil {
		acct, err = a.ops.AddAccount(r.Context(), manage.NewAccount{Address: r.PostFormValue("address"),
			Password: r.PostFormValue("password"), Admin: r.PostFormValue("admin") == "on", Quota: q})
	}
	a.done(w, r, "/admin/accounts", "Added "+acct.Address+".", err)
}

// parseQuota reads a quota in MiB ("" or 0: unlimited).
func parseQuota(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("quota %q: give a number of MiB (0 for unlimited)", v)
	}
	return n << 20, nil
}

// accountRemove removes an account that holds no mail at once; one that holds mail is removed
// only from the confirmation page, which names the message count and the aliases routing to
// it (the store refuses the removal if more mail arrived in between).
func (a *Admin) accountRemove(w http.ResponseWriter, r *http.Request, s *session) {
	addr := r.PostFormValue("address")
	if strings.EqualFold(addr, s.account.Address) {
		a.done(w, r, "/admin/accounts", "", errors.New("you cannot remove your own account while logged in with it"))
		return
	}
	confirmed, _ := strconv.ParseInt(r.PostFormValue("confirm_messages"), 10, 64)
	h, err := a.ops.RemoveAccount(r.Context(), manage.RemoveAccount{Address: addr, ConfirmMessages: confirmed})
	var held *store.HoldsMailError
	if errors.As(err, &held) {
		a.render(w, r, "account-remove.html", s, pageData{Title: "Remove " + held.Address + "?", Nav: "accounts",
			Data: map[string]any{"Held": held}})
		return
	}
	msg := fmt.Sprintf("Removed %s and its %d message(s).", addr, h.Messages)
	if len(h.Aliases) > 0 {
		msg += " Aliases that routed to it: " + strings.Join(h.Aliases, ", ") + "."
	}
	a.done(w, r, "/admin/accounts", msg, err)
}

func (a *Admin) accountPassword(w http.ResponseWriter, r *http.Request, s *session) {
	addr, pw := r.PostFormValue("address"), r.PostFormValue("password")
	err := a.ops.SetPassword(r.Context(), addr, pw, s.token)
	a.done(w, r, "/admin/accounts", "Changed the password of "+addr+".", err)
}

func (a *Admin) accountQuota(w http.ResponseWriter, r *http.Request, s *session) {
	addr := r.PostFormValue("address")
	q, err := parseQuota(r.PostFormValue("quota"))
	if err == nil {
		err = a.ops.SetQuota(r.Context(), addr, q)
	}
	a.done(w, r, "/admin/accounts", "Changed the quota of "+addr+".", err)
}

func (a *Admin) accountAdmin(w http.ResponseWriter, r *http.Request, s *session) {
	addr := r.PostFormValue("address")
	on := r.PostFormValue("admin") == "on"
	if !on && strings.EqualFold(addr, s.account.Address) {
		a.done(w, r, "/admin/accounts", "", errors.New("you cannot take away your own admin rights"))
		return
	}
	err := a.ops.SetAdmin(r.Context(), addr, on)
	a.done(w, r, "/admin/accounts", "Changed the admin rights of "+addr+".", err)
}

func (a *Admin) aliasesPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	as, err := a.st.Aliases(ctx)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	accts, _ := a.st.Accounts(ctx)
	a.render(w, r, "aliases.html", s, pageData{Title: "Aliases", Nav: "aliases", Data: map[string]any{"Aliases": as, "Accounts": accts}})
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (a *Admin) aliasAdd(w http.ResponseWriter, r *http.Request, s *session) {
	alias := strings.TrimSpace(r.PostFormValue("alias"))
	targets := splitList(r.PostFormValue("targets"))
	err := a.ops.AddAlias(r.Context(), alias, targets)
	a.done(w, r, "/admin/aliases", "Added "+alias+".", err)
}

func (a *Admin) aliasRemove(w http.ResponseWriter, r *http.Request, s *session) {
	alias := r.PostFormValue("alias")
	err := a.ops.RemoveAlias(r.Context(), alias, splitList(r.PostFormValue("target")))
	a.done(w, r, "/admin/aliases", "Removed "+alias+".", err)
}

type queueView struct {
	store.QueueEntry
	Subject string // decoded from the message: text from a stranger, escaped like every other value
}

func (a *Admin) queuePage(w http.ResponseWriter, r *http.Request, s *session) {
	q, err := a.st.QueueList(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	views := make([]queueView, len(q))
	for i, e := range q {
		views[i].QueueEntry = e
		if i < 500 {
			// The header alone: a page of the queue never reads whole bodies.
			if body, err := a.st.QueueBody(r.Context(), e.BlobID); err == nil {
				if hdr, err := message.ReadHeaderAt(body, body.Size()); err == nil {
					views[i].Subject = subjectOf(hdr)
				}
			}
		}
	}
	a.render(w, r, "queue.html", s, pageData{Title: "Queue", Nav: "queue", Data: views})
}

// subjectOf returns the decoded Subject of a message (RFC 2047 words decoded), or "".
func subjectOf(msg []byte) string {
	hdr, _ := message.ParseHeader(msg)
	subj := hdr.Text("Subject")
	if len(subj) > 200 {
		subj = subj[:200] + "…"
	}
	return subj
}

func queueID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("bad queue id %q", r.PostFormValue("id"))
	}
	return id, nil
}

func (a *Admin) queueRetry(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := queueID(r)
	var n int
	if err == nil {
		n, err = a.ops.QueueRetry(r.Context(), id)
	}
	a.done(w, r, "/admin/queue", fmt.Sprintf("%d message(s) will be tried again now.", n), err)
}

func (a *Admin) queueRemove(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := queueID(r)
	var n int
	if err == nil {
		n, err = a.ops.QueueRemove(r.Context(), id)
	}
	a.done(w, r, "/admin/queue", fmt.Sprintf("Removed %d message(s) from the queue without delivering them.", n), err)
}

func (a *Admin) certsPage(w http.ResponseWriter, r *http.Request, s *session) {
	var st *CertStatus
	if a.cfg.Certs != nil {
		c := a.cfg.Certs()
		st = &c
	}
	a.render(w, r, "certificates.html", s, pageData{Title: "Certificates", Nav: "certificates", Data: st})
}

func (a *Admin) certsRefresh(w http.ResponseWriter, r *http.Request, s *session) {
	err := a.ops.RefreshCerts()
	a.done(w, r, "/admin/certificates", "Checking DNS and certificates now; reload in a minute.", err)
}

// settingGroup is one service's settings on the settings page, which is generated from the
// owners' definitions.
type settingGroup struct {
	Service  string
	Settings []settingView
}

type settingView struct {
	manage.Setting
	Input   string   // the form control: text, number, select, password
	Options []string // a select's values
	Error   string   // the refusal of the value just posted, shown next to the field
}

func settingInput(d settings.Def) string {
	switch {
	case d.Secret:
		return "password"
	case d.Kind == settings.Int:
		return "number"
	case d.Kind == settings.Bool || d.Kind == settings.Enum:
		return "select"
	}
	return "text"
}

// settingGroups lists the settings by service; failed, when set, is the setting whose posted
// value was refused, shown with the value as typed (a secret never).
func (a *Admin) settingGroups(ctx context.Context, failed *settingView) ([]settingGroup, error) {
	list, err := a.ops.ListSettings(ctx)
	if err != nil {
		return nil, err
	}
	var groups []settingGroup
	for _, st := range list {
		v := settingView{Setting: st, Input: settingInput(st.Def), Options: st.Choices}
		if st.Kind == settings.Bool {
			v.Options = []string{"false", "true"}
		} else if st.Default == "" && len(v.Options) > 0 {
			v.Options = append([]string{""}, v.Options...)
		}
		if failed != nil && failed.Key == st.Key {
			v.Error = failed.Error
			if !st.Secret {
				v.Value = failed.Value
			}
		}
		if len(groups) == 0 || groups[len(groups)-1].Service != st.Service {
			groups = append(groups, settingGroup{Service: st.Service})
		}
		g := &groups[len(groups)-1]
		g.Settings = append(g.Settings, v)
	}
	return groups, nil
}

func (a *Admin) settingsPage(w http.ResponseWriter, r *http.Request, s *session) {
	groups, err := a.settingGroups(r.Context(), nil)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, "settings.html", s, pageData{Title: "Settings", Nav: "settings", Data: groups})
}

func (a *Admin) settingsSave(w http.ResponseWriter, r *http.Request, s *session) {
	key, value := r.PostFormValue("key"), strings.TrimSpace(r.PostFormValue("value"))
	def, err := a.ops.Settings().Lookup(key)
	if err == nil && def.Secret && value == "" && r.PostFormValue("clear") != "on" {
		a.done(w, r, "/admin/settings#"+url.QueryEscape(key), "Unchanged.", nil)
		return
	}
	if r.PostFormValue("reset") == "on" {
		value = ""
	}
	if err == nil {
		_, err = a.ops.SetSetting(context.WithoutCancel(r.Context()), key, value)
	}
	if manage.IsInvalid(err) {
		// The page again, with the refusal next to the field; nothing was stored.
		groups, gerr := a.settingGroups(r.Context(), &settingView{Setting: manage.Setting{Def: settings.Def{Key: key}, Value: value}, Error: err.Error()})
		if gerr != nil {
			a.serverError(w, r, gerr)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		a.render(w, r, "settings.html", s, pageData{Title: "Settings", Nav: "settings", Error: "Not saved: " + err.Error(), Data: groups})
		return
	}
	msg := "Saved " + key + "."
	if def.Restart {
		msg = "Saved " + key + "; it applies at the next restart of mailstead."
	}
	a.done(w, r, "/admin/settings#"+url.QueryEscape(key), msg, err)
}

func (a *Admin) eventsPage(w http.ResponseWriter, r *http.Request, s *session) {
	kind := r.URL.Query().Get("kind")
	evs, err := a.st.RecentMailEvents(r.Context(), kind, 200)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, "events.html", s, pageData{Title: "Recent deliveries and rejections", Nav: "events",
		Data: map[string]any{"Events": evs, "Kind": kind, "Kinds": []string{store.MailReceived, store.MailDelivered, store.MailDeferred, store.MailBounced, store.MailRejected}}})
}

func (a *Admin) tokensPage(w http.ResponseWriter, r *http.Request, s *session) {
	ts, err := a.st.APITokens(r.Context(), s.account.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, "tokens.html", s, pageData{Title: "API tokens", Nav: "tokens", Data: map[string]any{"Tokens": ts}})
}

func (a *Admin) tokenAdd(w http.ResponseWriter, r *http.Request, s *session) {
	tok, _, err := a.ops.AddAPIToken(r.Context(), s.account.ID, r.PostFormValue("name"))
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	ts, _ := a.st.APITokens(r.Context(), s.account.ID)
	w.Header().Set("Cache-Control", "no-store")
	a.render(w, r, "tokens.html", s, pageData{Title: "API tokens", Nav: "tokens",
		Flash: "Copy the new token now; it is not shown again.", Data: map[string]any{"Tokens": ts, "New": tok}})
}

func (a *Admin) tokenRemove(w http.ResponseWriter, r *http.Request, s *session) {
	id, _ := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	err := a.ops.RemoveAPIToken(r.Context(), s.account.ID, id)
	a.done(w, r, "/admin/tokens", "Revoked the token.", err)
}

// backupDownload streams a consistent backup of the data directory (SQLite online backup) as a
// .tar.gz whose one directory `mailstead serve --data` opens as is.
func (a *Admin) backupDownload(w http.ResponseWriter, r *http.Request, s *session) {
	name := "mailstead-backup-" + time.Now().UTC().Format("20060102-150405") + ".tar.gz"
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	// A backup may take longer than the server's response deadline (WriteTimeout); each write
	// still has the listener's own deadline, so a client that stops reading is still cut off.
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	if err := a.ops.WriteBackup(r.Context(), w); err != nil {
		// Headers are gone; the broken download is what the browser sees. The log says why.
		a.log.Error("backup download", "account", s.account.Address, "err", err)
	}
}
