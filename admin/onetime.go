package admin

import (
	"sync"
	"time"
)

// oneTime holds a secret just made (an app password) for the one page view that shows it:
// the POST that makes it redirects to a GET (so reloading the page makes no second one), and
// that GET takes the secret out, so a reload or a later visit shows it no more. Keyed by the web
// session, kept in memory only, and dropped after a minute if never shown.
type oneTime struct {
	mu sync.Mutex
	m  map[string]oneTimeSecret
}

type oneTimeSecret struct {
	name, secret string
	expires      time.Time
}

const oneTimeTTL = time.Minute

func (o *oneTime) put(session, name, secret string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]oneTimeSecret{}
	}
	now := time.Now()
	for k, v := range o.m {
		if now.After(v.expires) {
			delete(o.m, k)
		}
	}
	o.m[session] = oneTimeSecret{name: name, secret: secret, expires: now.Add(oneTimeTTL)}
}

func (o *oneTime) take(session string) (name, secret string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.m[session]
	delete(o.m, session)
	if !ok || time.Now().After(v.expires) {
		return "", "", false
	}
	return v.name, v.secret, true
}
