package admin

import (
	"context"
	"io/fs"
	"path/filepath"
	"time"

	"mailstead/store"
)

// overviewView is the landing page's data: one line per area, with a status and a link.
type overviewView struct {
	Domains    []domainStatus
	Cert       ServerCheck
	Queue      int
	Oldest     time.Time // created time of the oldest queued message; zero when the queue is empty
	Delivered  int64     // today (UTC), delivered locally or relayed
	Received   int64
	Rejected   int64
	Bounced    int64
	DiskBytes  int64
	DataDir    string
	Version    string
	NoDomains  bool
	QueueStale bool // the oldest message has waited more than a day
}

// domainStatus is the DNS check summary of one domain.
type domainStatus struct {
	Name   string
	Status string // ok, weaker, missing (something missing or wrong), error
	Counts map[string]int
}

func (a *Admin) overview(ctx context.Context) (overviewView, error) {
	v := overviewView{Version: a.cfg.Version, DataDir: a.st.Dir()}
	names, err := a.domainNames(ctx)
	if err != nil {
		return v, err
	}
	v.NoDomains = len(names) == 0
	for _, d := range names {
		rep, err := a.dnsReport(ctx, d, false)
		ds := domainStatus{Name: d, Counts: rep.Counts, Status: StatusOK}
		switch {
		case err != nil:
			ds.Status = StatusError
		case rep.Counts[StatusMissing]+rep.Counts[StatusWrong] > 0:
			ds.Status = StatusMissing
		case rep.Counts[StatusError] > 0:
			ds.Status = StatusError
		case rep.Counts[StatusWeaker] > 0:
			ds.Status = StatusWeaker
		}
		v.Domains = append(v.Domains, ds)
	}
	v.Cert = a.certCheck(a.hostname(ctx))
	q, err := a.st.QueueList(ctx)
	if err != nil {
		return v, err
	}
	v.Queue = len(q)
	for _, e := range q {
		if v.Oldest.IsZero() || e.Created.Before(v.Oldest) {
			v.Oldest = e.Created
		}
	}
	v.QueueStale = !v.Oldest.IsZero() && time.Since(v.Oldest) > 24*time.Hour
	today := time.Now().UTC().Truncate(24 * time.Hour)
	counts, err := a.st.CountMailEvents(ctx, today)
	if err != nil {
		return v, err
	}
	v.Delivered, v.Received = counts[store.MailDelivered], counts[store.MailReceived]
	v.Rejected, v.Bounced = counts[store.MailRejected], counts[store.MailBounced]
	v.DiskBytes = dirSize(a.st.Dir())
	return v, nil
}

// dirSize is the bytes in the files below dir (the database, its WAL, spool files).
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
