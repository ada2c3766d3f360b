package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"mailstead/maillog"
	"mailstead/store"
)

// The admin page's "recent deliveries and rejections" and the Prometheus counters are the
// subscribers of the typed mail events (maillog) that the SMTP listeners, the queue and every
// login write their stable lines with: no protocol package knows of either, no handler reads log
// text, and recording costs no extra commit on the delivery path (events are batched).

// mailSubscribers is the server's one maillog subscriber: it passes each event to the metrics
// and to the recent-events recorder. Both are set in Start before any service runs.
type mailSubscribers struct{ s *Server }

func (m mailSubscribers) MailEvent(ev maillog.Event) {
	if m.s.metrics != nil {
		m.s.metrics.MailEvent(ev)
	}
	if m.s.mailEvents == nil {
		return
	}
	if se, ok := storeMailEvent(ev); ok {
		select {
		case m.s.mailEvents <- se:
		default: // a flood: the page shows a window on recent traffic, not every line
		}
	}
}

// storeMailKinds maps a mail event to the admin page's kind; failed logins are not shown there.
var storeMailKinds = map[maillog.Kind]string{
	maillog.Received: store.MailReceived, maillog.Submitted: store.MailReceived, maillog.Rejected: store.MailRejected,
	maillog.Delivered: store.MailDelivered, maillog.Deferred: store.MailDeferred, maillog.Bounced: store.MailBounced,
}

func storeMailEvent(ev maillog.Event) (store.MailEvent, bool) {
	kind, ok := storeMailKinds[ev.Kind]
	if !ok {
		return store.MailEvent{}, false
	}
	return store.MailEvent{At: ev.At, Kind: kind, MailFrom: ev.MailFrom, Rcpt: strings.Join(ev.Rcpts, ","),
		Remote: ev.Remote, Detail: ev.Detail}, true
}

// recordMailEvents writes events in batches until ctx ends, then writes what is left.
func recordMailEvents(ctx context.Context, st *store.Store, in <-chan store.MailEvent, log *slog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var batch []store.MailEvent
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := st.RecordMailEvents(context.WithoutCancel(ctx), batch...); err != nil {
			log.Warn("recent mail events not recorded", "n", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case ev := <-in:
			if batch = append(batch, ev); len(batch) >= 200 {
				flush()
			}
		case <-tick.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case ev := <-in:
					batch = append(batch, ev)
				default:
					flush()
					return
				}
			}
		}
	}
}
