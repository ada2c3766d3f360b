package server

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mailstead/mailauth"
	"mailstead/manage"
	"mailstead/queue"
	"mailstead/smtp"
	"mailstead/store"
)

// startOutbound starts the outbound queue and the submission listeners (587 STARTTLS, 465
// implicit TLS). Submitted mail is DKIM-signed, committed (local copies and queue rows together)
// and then wakes the queue.
func (s *Server) startOutbound(ctx context.Context) error {
	// Domains created before keys were made at domain creation (or by tools that write the
	// store directly) get their keys now, through the operations layer that makes them at
	// domain creation, so every domain signs.
	domains, err := s.store.Domains(ctx)
	if err != nil {
		return err
	}
	for _, d := range domains {
		if err := s.ops.EnsureDKIM(ctx, d.Name); err != nil {
			return fmt.Errorf("dkim keys for %s: %w", d.Name, err)
		}
	}
	var source net.IP
	if ip := net.ParseIP(s.opts.Bind); ip != nil && !ip.IsUnspecified() {
		source = ip
	}
	signer := mailauth.NewSigner(s.store) // keeps the parsed keys across messages
	sign, signStream := signer.SignFrom, signer.SignStream
	q, err := queue.New(queue.Config{
		Store:      s.store,
		Resolver:   s.resolver,
		Logger:     s.log.With("service", "queue"),
		MailLog:    s.maillog,
		Hostname:   s.Hostname,
		PortOffset: s.opts.PortOffset,
		DevMode:    s.opts.Dev,
		SourceIP:   source,
		Sign:       sign,
	})
	if err != nil {
		return err
	}
	bg, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(bg)
	}()
	stopQueue := func(context.Context) error {
		cancel()
		<-done
		return nil
	}

	s.queue.Store(q)
	overQuota, err := smtp.SettingOverQuotaTemporary.Bool(ctx, s.store)
	if err != nil {
		stopQueue(ctx)
		return err
	}
	spool, err := s.smtpSpool()
	if err != nil {
		stopQueue(ctx)
		return err
	}
	sub := smtp.NewSubmission(smtp.Config{
		Refused:            s.metrics.countRefusals("submission"),
		OverQuotaTemporary: overQuota,
		Store:              s.store,
		Hostname:           s.Hostname,
		TLSConfig:          s.certs.TLSConfig(),
		Logger:             s.log.With("service", "submission"),
		MailLog:            s.maillog,
		Limits:             s.smtpLimits(ctx),
		Spool:              spool,
		Delivered:          func(in *smtp.Delivered, _ int) { s.notifySuccess(in) }, // the queue wakes on the store's QueueDue
	}, smtp.SubmissionConfig{Sign: signStream, Logins: s.logins})
	s.addSMTPServer(sub)
	l587, err := s.listen(PortSubmission)
	if err != nil {
		stopQueue(ctx)
		return err
	}
	l465, err := s.listen(PortSubmissions)
	if err != nil {
		l587.Close()
		stopQueue(ctx)
		return err
	}
	// 465 has a stopper of its own that closes its listener: sub.Shutdown closes only the
	// listeners whose accept loop has already started, so a 465 loop that started after it
	// (seen under load) accepted for ever and Shutdown never returned.
	stopSub := onceErr(sub.Shutdown)
	s.serve("submissions", l465, sub.ServeTLS, stopSub)
	// The queue stops after the submission listeners, so a message accepted during the drain
	// is still in the store for the next start. (stopSub returns only once the drain is over,
	// whichever stopper ran it.)
	s.serve("submission", l587, sub.Serve, func(ctx context.Context) error {
		err := stopSub(ctx)
		stopQueue(ctx)
		return err
	})
	return nil
}

// manageQueue is `mailstead queue list|retry|remove [ID]`. Retry makes entries due now; a running
// queue picks them up at its next look (within a minute).
func manageQueue(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, _ string) (string, error) {
	if len(args) == 0 || len(args) > 2 {
		return "", usage("queue list|retry|remove [ID]")
	}
	var id int64
	if len(args) == 2 {
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || n <= 0 {
			return "", usage("queue list|retry|remove [ID]")
		}
		id = n
	}
	switch args[0] {
	case "list":
		es, err := st.QueueList(ctx)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFROM\tTO\tSIZE\tQUEUED\tATTEMPTS\tNEXT\tLAST ERROR")
		for _, e := range es {
			if id != 0 && e.ID != id {
				continue
			}
			from := e.MailFrom
			if from == "" {
				from = "<>"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", e.ID, from, e.Rcpt, e.Size,
				e.Created.UTC().Format(time.DateTime), e.Attempts, e.NextAttempt.UTC().Format(time.DateTime), e.LastError)
		}
		tw.Flush()
		return b.String(), nil
	case "retry":
		n, err := ops.QueueRetry(ctx, id)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d queued message(s) due now\n", n), nil
	case "remove":
		if id == 0 {
			return "", usage("queue remove ID")
		}
		if _, err := ops.QueueRemove(ctx, id); err != nil {
			return "", err
		}
		return fmt.Sprintf("removed %d from the queue (no bounce sent)\n", id), nil
	}
	return "", usage("queue list|retry|remove [ID]")
}

// notifySuccess sends the success reports (RFC 3461 NOTIFY=SUCCESS) for recipients whose copies
// were just committed here. A report that cannot be queued is logged; the message itself is
// delivered either way.
func (s *Server) notifySuccess(in *smtp.Delivered) {
	q := s.queue.Load()
	if len(in.NotifySuccess) == 0 || q == nil {
		return
	}
	var rcpts []queue.DeliveredRecipient
	for _, r := range in.NotifySuccess {
		rcpts = append(rcpts, queue.DeliveredRecipient{Addr: r.Addr, DSN: r.DSN})
	}
	if err := q.NotifyDelivered(context.Background(), in.MailFrom, in.Header, rcpts); err != nil {
		s.log.Error("success report", "id", in.ID, "from", in.MailFrom, "err", err)
	}
}
