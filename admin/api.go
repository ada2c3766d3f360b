package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mailstead/loginlimit"
	"mailstead/manage"
	"mailstead/store"
)

// The JSON API: the management operations of the admin pages for scripts, authenticated with a
// per-admin API token ("Authorization: Bearer ms_..."), never with the session cookie, so a page
// in the browser cannot be tricked into calling it.

func (a *Admin) apiRoutes(mux *http.ServeMux) {
	h := func(p string, fn func(w http.ResponseWriter, r *http.Request, acct store.Account) (any, error)) {
		mux.Handle(p, a.api(fn))
	}
	h("GET /api/v1/domains", a.apiDomains)
	h("POST /api/v1/domains", a.apiDomainAdd)
	h("DELETE /api/v1/domains/{domain}", a.apiDomainRemove)
	h("GET /api/v1/domains/{domain}/dns", a.apiDNS)
	h("GET /api/v1/accounts", a.apiAccounts)
	h("POST /api/v1/accounts", a.apiAccountAdd)
	h("DELETE /api/v1/accounts/{address}", a.apiAccountRemove)
	h("PUT /api/v1/accounts/{address}/password", a.apiAccountPassword)
	h("PUT /api/v1/accounts/{address}/quota", a.apiAccountQuota)
	h("PUT /api/v1/accounts/{address}/admin", a.apiAccountAdmin)
	h("GET /api/v1/aliases", a.apiAliases)
	h("POST /api/v1/aliases", a.apiAliasAdd)
	h("DELETE /api/v1/aliases/{alias}", a.apiAliasRemove)
	h("GET /api/v1/queue", a.apiQueue)
	h("POST /api/v1/queue/{id}/retry", a.apiQueueRetry)
	h("DELETE /api/v1/queue/{id}", a.apiQueueRemove)
	h("GET /api/v1/settings", a.apiSettings)
	h("PUT /api/v1/settings/{key}", a.apiSettingSet)
	h("GET /api/v1/events", a.apiEvents)
	h("GET /api/v1/certificates", a.apiCerts)
}

// apiError carries an HTTP status.
type apiError struct {
	status int
	msg    string
}

func (e apiError) Error() string { return e.msg }

func badRequest(msg string) error { return apiError{http.StatusBadRequest, msg} }

func statusOf(err error) int {
	var ae apiError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNotOurDomain):
		return http.StatusNotFound
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrDomainNotEmpty):
		return http.StatusConflict
	case manage.IsInvalid(err):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrAlreadySetUp), errors.Is(err, store.ErrLastAdmin), errors.As(err, new(*store.HoldsMailError)):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func (a *Admin) api(fn func(w http.ResponseWriter, r *http.Request, acct store.Account) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		write := func(status int, v any) {
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(v)
		}
		attempt, allowed := a.begin(w, r, loginlimit.APIToken, "")
		if !allowed {
			write(http.StatusTooManyRequests, map[string]string{"error": "too many failed attempts"})
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		acct, err := a.st.APITokenAccount(r.Context(), strings.TrimSpace(tok))
		if ok && err == nil {
			attempt.Succeeded()
		} else {
			attempt.Failed()
			a.logins.LogFailure(a.log, "api", remoteIP(r), "(api token)")
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailstead"`)
			write(http.StatusUnauthorized, map[string]string{"error": "missing or unknown API token"})
			return
		}
		if !acct.IsAdmin {
			write(http.StatusForbidden, map[string]string{"error": "the token's account is not an admin"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		v, err := fn(w, r, acct)
		if err != nil {
			st := statusOf(err)
			if st == http.StatusInternalServerError {
				a.log.Error("api", "path", r.URL.Path, "err", err)
			}
			write(st, map[string]string{"error": err.Error()})
			return
		}
		if v == nil {
			v = map[string]bool{"ok": true}
		}
		write(http.StatusOK, v)
	})
}

func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return badRequest("bad JSON body: " + err.Error())
	}
	return nil
}

type apiDomain struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	DKIM    []string  `json:"dkim_selectors"`
}

func (a *Admin) apiDomains(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	ds, err := a.st.Domains(r.Context())
	out := []apiDomain{}
	for _, d := range ds {
		ad := apiDomain{Name: d.Name, Created: d.Created, DKIM: []string{}}
		if a.cfg.DKIMKeys != nil {
			keys, _ := a.cfg.DKIMKeys(r.Context(), d.Name)
			for _, k := range keys {
				ad.DKIM = append(ad.DKIM, k.Selector)
			}
		}
		out = append(out, ad)
	}
	return out, err
}

func (a *Admin) apiDomainAdd(w http.ResponseWriter, r *http.Request, acct store.Account) (any, error) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	d, err := a.ops.AddDomain(r.Context(), req.Name, acct.Address)
	if err != nil {
		return nil, err
	}
	return map[string]string{"name": d.Name}, nil
}

func (a *Admin) apiDomainRemove(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	return nil, a.ops.RemoveDomain(r.Context(), r.PathValue("domain"))
}

type apiRecord struct {
	Group  string `json:"group"`
	Zone   string `json:"zone"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
	Status string `json:"status"`
	Found  string `json:"found,omitempty"`
}

func (a *Admin) apiDNS(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	domain := a.localDomain(r.Context(), r.PathValue("domain"))
	if domain == "" {
		return nil, store.ErrNotOurDomain
	}
	v, err := a.dnsReport(r.Context(), domain, r.URL.Query().Get("fresh") == "1")
	if err != nil {
		return nil, err
	}
	out := struct {
		Domain  string        `json:"domain"`
		Records []apiRecord   `json:"records"`
		Server  []ServerCheck `json:"server"`
	}{Domain: domain, Records: []apiRecord{}, Server: v.Server}
	for _, g := range v.Groups {
		for _, c := range g.Records {
			out.Records = append(out.Records, apiRecord{c.Group, c.Zone(), c.Name, c.Type, c.Value, c.Reason, c.Status, c.Found})
		}
	}
	return out, nil
}

type apiAccount struct {
	Address string    `json:"address"`
	Admin   bool      `json:"admin"`
	Quota   int64     `json:"quota"`
	Created time.Time `json:"created"`
}

func (a *Admin) apiAccounts(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	as, err := a.st.Accounts(r.Context())
	out := []apiAccount{}
	for _, ac := range as {
		out = append(out, apiAccount{ac.Address, ac.IsAdmin, ac.Quota, ac.Created})
	}
	return out, err
}

func (a *Admin) apiAccountAdd(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	var req struct {
		Address  string `json:"address"`
		Password string `json:"password"`
		Admin    bool   `json:"admin"`
		Quota    int64  `json:"quota"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	ac, err := a.ops.AddAccount(r.Context(), manage.NewAccount{Address: req.Address, Password: req.Password, Admin: req.Admin, Quota: req.Quota})
	if err != nil {
		return nil, err
	}
	return apiAccount{ac.Address, ac.IsAdmin, ac.Quota, ac.Created}, nil
}

func (a *Admin) apiAccountRemove(w http.ResponseWriter, r *http.Request, acct store.Account) (any, error) {
	if strings.EqualFold(r.PathValue("address"), acct.Address) {
		return nil, badRequest("an admin cannot remove the account of its own token")
	}
	// ?force=true deletes whatever mail it holds; ?confirm_messages=N deletes it if it holds at
	// most N messages (the count a 409 answer gave). Without either, only an empty account goes.
	q := r.URL.Query()
	confirmed, _ := strconv.ParseInt(q.Get("confirm_messages"), 10, 64)
	h, err := a.ops.RemoveAccount(r.Context(), manage.RemoveAccount{Address: r.PathValue("address"),
		Force: q.Get("force") == "true", ConfirmMessages: confirmed})
	if err != nil {
		return nil, err
	}
	return apiRemoved{Address: r.PathValue("address"), Messages: h.Messages, Aliases: nonNil(h.Aliases)}, nil
}

// apiRemoved is what went with a removed account.
type apiRemoved struct {
	Address  string   `json:"address"`
	Messages int64    `json:"messages"`
	Aliases  []string `json:"aliases"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *Admin) apiAccountAdmin(w http.ResponseWriter, r *http.Request, acct store.Account) (any, error) {
	var req struct {
		Admin *bool `json:"admin"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Admin == nil {
		return nil, badRequest(`give {"admin": true} or {"admin": false}`)
	}
	if err := a.ops.SetAdmin(r.Context(), r.PathValue("address"), *req.Admin); err != nil {
		return nil, err
	}
	return map[string]any{"address": r.PathValue("address"), "admin": *req.Admin}, nil
}

func (a *Admin) apiAccountPassword(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	var req struct {
		Password string `json:"password"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return nil, a.ops.SetPassword(r.Context(), r.PathValue("address"), req.Password, "")
}

func (a *Admin) apiAccountQuota(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	var req struct {
		Quota int64 `json:"quota"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return nil, a.ops.SetQuota(r.Context(), r.PathValue("address"), req.Quota)
}

func (a *Admin) apiAliases(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	as, err := a.st.Aliases(r.Context())
	type alias struct {
		Address string   `json:"address"`
		Targets []string `json:"targets"`
	}
	out := []alias{}
	for _, al := range as {
		out = append(out, alias{al.Address, al.Targets})
	}
	return out, err
}

func (a *Admin) apiAliasAdd(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	var req struct {
		Address string   `json:"address"`
		Targets []string `json:"targets"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return nil, a.ops.AddAlias(r.Context(), req.Address, req.Targets)
}

func (a *Admin) apiAliasRemove(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	return nil, a.ops.RemoveAlias(r.Context(), r.PathValue("alias"), r.URL.Query()["target"])
}

type apiQueueEntry struct {
	ID          int64     `json:"id"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	Size        int64     `json:"size"`
	Created     time.Time `json:"created"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error"`
	LastHost    string    `json:"last_host"`
}

func (a *Admin) apiQueue(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	q, err := a.st.QueueList(r.Context())
	out := []apiQueueEntry{}
	for _, e := range q {
		out = append(out, apiQueueEntry{e.ID, e.MailFrom, e.Rcpt, e.Size, e.Created, e.NextAttempt, e.Attempts, e.LastError, e.LastHost})
	}
	return out, err
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("bad queue id")
	}
	return id, nil
}

func (a *Admin) apiQueueRetry(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	_, err = a.ops.QueueRetry(r.Context(), id)
	return nil, err
}

func (a *Admin) apiQueueRemove(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	_, err = a.ops.QueueRemove(r.Context(), id)
	return nil, err
}

type apiSetting struct {
	Key     string   `json:"key"`
	Service string   `json:"service"`
	Type    string   `json:"type"`
	Value   string   `json:"value"` // a secret shows "(set)" or ""
	Default string   `json:"default"`
	Choices []string `json:"choices,omitempty"`
	Help    string   `json:"help"`
	Restart bool     `json:"restart"` // a change applies at the next restart
	Secret  bool     `json:"secret"`
}

func toAPISetting(s manage.Setting) apiSetting {
	return apiSetting{s.Key, s.Service, s.Kind.String(), s.Value, s.Default, s.Choices, s.Help, s.Restart, s.Secret}
}

func (a *Admin) apiSettings(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	list, err := a.ops.ListSettings(r.Context())
	out := []apiSetting{}
	for _, s := range list {
		out = append(out, toAPISetting(s))
	}
	return out, err
}

// apiSettingSet answers the setting as it now is, with restart true when the change waits for
// the next start.
func (a *Admin) apiSettingSet(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	var req struct {
		Value *string `json:"value"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Value == nil {
		return nil, badRequest(`give {"value": "..."} ("" restores the default)`)
	}
	key := r.PathValue("key")
	if _, err := a.ops.SetSetting(context.WithoutCancel(r.Context()), key, *req.Value); err != nil {
		return nil, err
	}
	s, err := a.ops.GetSetting(r.Context(), key)
	return toAPISetting(s), err
}

func (a *Admin) apiEvents(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 2000 {
		limit = 200
	}
	evs, err := a.st.RecentMailEvents(r.Context(), r.URL.Query().Get("kind"), limit)
	type ev struct {
		At     time.Time `json:"at"`
		Kind   string    `json:"kind"`
		From   string    `json:"from"`
		To     string    `json:"to"`
		Remote string    `json:"remote"`
		Detail string    `json:"detail"`
	}
	out := []ev{}
	for _, e := range evs {
		out = append(out, ev{e.At, e.Kind, e.MailFrom, e.Rcpt, e.Remote, e.Detail})
	}
	return out, err
}

func (a *Admin) apiCerts(w http.ResponseWriter, r *http.Request, _ store.Account) (any, error) {
	if a.cfg.Certs == nil {
		return map[string]string{}, nil
	}
	return a.cfg.Certs(), nil
}
