package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"mailstead/store"
)

// The admin page's "recent deliveries and rejections" come from the stable log lines the SMTP
// listeners and the queue already write, the way the metrics do: no protocol package knows of the
// page, and recording costs no extra commit on the delivery path (events are batched).

// mailEventKinds maps a log message to the event it records.
var mailEventKinds = map[string]string{
	"smtp delivered":           store.MailReceived,
	"smtp submitted":           store.MailReceived,
	"smtp rejected":            store.MailRejected,
	"smtp submission rejected": store.MailRejected,
	"delivered":                store.MailDelivered,
	"deferred":                 store.MailDeferred,
	"bounced":                  store.MailBounced,
}

// eventHandler turns those log lines into store.MailEvents and passes every record on.
type eventHandler struct {
	next slog.Handler
	out  chan<- store.MailEvent
}

func (h *eventHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	if kind, ok := mailEventKinds[r.Message]; ok {
		if ev, ok := mailEvent(kind, r); ok {
			select {
			case h.out <- ev:
			default: // a flood: the page shows a window on recent traffic, not every line
			}
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &eventHandler{next: h.next.WithAttrs(as), out: h.out}
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	return &eventHandler{next: h.next.WithGroup(name), out: h.out}
}

func mailEvent(kind string, r slog.Record) (store.MailEvent, bool) {
	ev := store.MailEvent{At: r.Time, Kind: kind}
	var queueLine bool
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.String()
		switch a.Key {
		case "mail_from", "from":
			ev.MailFrom = v
		case "rcpts":
			ev.Rcpt = strings.Trim(v, "[]")
		case "rcpt":
			ev.Rcpt, queueLine = v, true
		case "ip", "host":
			ev.Remote = v
		case "reply", "reason":
			ev.Detail = v
		}
		return true
	})
	switch kind {
	case store.MailDelivered, store.MailDeferred, store.MailBounced:
		return ev, queueLine // only the queue's per-recipient attempt lines
	}
	return ev, true
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
