package admin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"mailstead/junk"
	"mailstead/store"
)

// junkDays is how far back the filing counter reaches on the pages.
const junkDays = 7

// junkView is an account's junk filter as the pages show it.
type junkView struct {
	Enabled     bool
	Threshold   string // as set, "" for the default
	Default     string
	Ham, Spam   int64 // messages learned from
	Days        []store.JunkDay
	Inbox, Junk int64 // filed in the last junkDays days
}

func (a *Admin) junkView(ctx context.Context, accountID int64) (junkView, error) {
	js, err := a.st.JunkSettingsOf(ctx, accountID)
	if err != nil {
		return junkView{}, err
	}
	days, err := a.st.JunkFiled(ctx, accountID, junkDays)
	if err != nil {
		return junkView{}, err
	}
	v := junkView{Enabled: js.Enabled, Ham: js.Ham, Spam: js.Spam, Days: days, Default: fmt.Sprintf("%.2f", junk.DefaultThreshold)}
	if js.Threshold > 0 {
		v.Threshold = fmt.Sprintf("%.2f", js.Threshold)
	}
	for _, d := range days {
		v.Inbox += d.Inbox
		v.Junk += d.Junk
	}
	return v, nil
}

// junkForm reads the filter form: a checkbox "enabled" and a threshold ("" for the default).
func junkForm(r *http.Request) (enabled bool, threshold float64, err error) {
	enabled = r.PostFormValue("enabled") == "on"
	if t := strings.TrimSpace(r.PostFormValue("threshold")); t != "" {
		threshold, err = strconv.ParseFloat(t, 64)
		if err != nil {
			return false, 0, fmt.Errorf("threshold %q: give a number such as 0.9", t)
		}
	}
	return enabled, threshold, nil
}

func (a *Admin) meJunk(w http.ResponseWriter, r *http.Request, s *session) {
	enabled, threshold, err := junkForm(r)
	if err == nil {
		err = a.ops.SetJunkFilter(r.Context(), s.account.ID, enabled, threshold)
	}
	a.done(w, r, "/me#junk", "Saved the junk filter settings.", err)
}

func (a *Admin) accountJunk(w http.ResponseWriter, r *http.Request, s *session) {
	addr := r.PostFormValue("address")
	enabled, threshold, err := junkForm(r)
	if err == nil {
		var acct store.Account
		if acct, err = a.st.AccountByAddress(r.Context(), addr); err == nil {
			err = a.ops.SetJunkFilter(r.Context(), acct.ID, enabled, threshold)
		}
	}
	a.done(w, r, "/admin/accounts", "Saved the junk filter of "+addr+".", err)
}

// junkViews returns the filter view of each account, by ID, for the accounts page.
func (a *Admin) junkViews(ctx context.Context, accts []store.Account) (map[int64]junkView, error) {
	out := make(map[int64]junkView, len(accts))
	for _, ac := range accts {
		v, err := a.junkView(ctx, ac.ID)
		if err != nil {
			return nil, err
		}
		out[ac.ID] = v
	}
	return out, nil
}
