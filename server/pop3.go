package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"mailstead/pop3"
	"mailstead/scram"
	"mailstead/store"
)

// startPOP3 serves POP3 on 110 (STLS) and 995 (implicit TLS) from one pop3.Server, so both ports
// share the maildrop lock.
func (s *Server) startPOP3(ctx context.Context) error {
	total, err1 := pop3.SettingMaxConns.Int(ctx, s.store)
	perIP, err2 := pop3.SettingMaxConnsPerIP.Int(ctx, s.store)
	if err := errors.Join(err1, err2); err != nil {
		s.log.Warn("pop3 connection limits", "err", err) // the defaults stand in
	}
	srv, err := pop3.NewServer(pop3.Config{
		MailLog:             s.maillog,
		Backend:             pop3Backend{s.store},
		TLSConfig:           s.certs.TLSConfig(),
		Logger:              s.log.With("service", "pop3"),
		Hostname:            s.Hostname,
		AllowInsecureAuth:   s.opts.Dev, // and even then only for loopback clients
		Logins:              s.logins,
		Refused:             s.metrics.countRefusals("pop3"),
		MaxConnections:      int(total),
		MaxConnectionsPerIP: int(perIP),
	})
	if err != nil {
		return fmt.Errorf("pop3: %w", err)
	}
	plain, err := s.listen(PortPOP3)
	if err != nil {
		return err
	}
	implicit, err := s.listen(PortPOP3S)
	if err != nil {
		plain.Close()
		return err
	}
	stopOnce := onceErr(srv.Shutdown)
	s.serve("pop3", plain, srv.Serve, stopOnce)
	s.serve("pop3s", implicit, srv.ServeTLS, stopOnce)
	return nil
}

// pop3Backend adapts the store to POP3: the maildrop is the account's INBOX.
type pop3Backend struct{ st *store.Store }

func (b pop3Backend) Login(ctx context.Context, user, password string, _ net.Addr) (pop3.Maildrop, error) {
	acct, err := b.st.Authenticate(ctx, user, password)
	if errors.Is(err, store.ErrAuthFailed) {
		return nil, pop3.ErrAuthFailed
	}
	if errors.Is(err, store.ErrPasswordBusy) {
		return nil, fmt.Errorf("%w: %w", pop3.ErrBusy, err)
	}
	if err != nil {
		return nil, err
	}
	return b.open(ctx, acct)
}

// SCRAMCredentials are the store's (made-up ones for an unknown user).
func (b pop3Backend) SCRAMCredentials(ctx context.Context, user string) (scram.Credentials, error) {
	_, creds, err := b.st.SCRAMCredentials(ctx, user)
	return creds, err
}

// OpenVerified opens the maildrop of a user whose SCRAM proof checked.
func (b pop3Backend) OpenVerified(ctx context.Context, user string) (pop3.Maildrop, error) {
	acct, err := b.st.AccountByAddress(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("pop3 login %s: %w", user, err)
	}
	return b.open(ctx, acct)
}

func (b pop3Backend) open(ctx context.Context, acct store.Account) (pop3.Maildrop, error) {
	inbox, err := b.st.MailboxByName(ctx, acct.ID, "INBOX")
	if err != nil {
		return nil, fmt.Errorf("pop3 login %s: %w", acct.Address, err)
	}
	return &maildrop{st: b.st, account: acct, inbox: inbox}, nil
}

type maildrop struct {
	st      *store.Store
	account store.Account
	inbox   store.Mailbox
}

func (m *maildrop) Key() string { return fmt.Sprint(m.account.ID) }

// Messages is the snapshot of INBOX. UIDL is UIDVALIDITY-UID: unique, stable across sessions and
// restarts, and never reused (RFC 1939 §7), because UIDs are never reused within a UIDVALIDITY.
func (m *maildrop) Messages(ctx context.Context) ([]pop3.Message, error) {
	msgs, err := m.st.Messages(ctx, m.inbox.ID)
	if err != nil {
		return nil, err
	}
	out := make([]pop3.Message, len(msgs))
	for i, msg := range msgs {
		out[i] = pop3.Message{ID: msg.ID, UIDL: fmt.Sprintf("%d-%d", m.inbox.UIDValidity, msg.UID), Size: msg.Size}
	}
	return out, nil
}

func (m *maildrop) Open(ctx context.Context, id int64) (io.ReadCloser, error) {
	// Streamed from the store's chunks: RETR of a large message holds one chunk at a time.
	r, err := m.st.OpenMessage(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pop3.ErrGone
	}
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bufio.NewReaderSize(io.NewSectionReader(r, 0, r.Size()), 64<<10)), nil
}

func (m *maildrop) Delete(ctx context.Context, ids []int64) error {
	return m.st.DeleteMessages(ctx, m.inbox.ID, ids)
}

func (m *maildrop) Close() error { return nil }

// onceErr makes a stop function safe to register for two listeners of one server.
func onceErr(stop func(context.Context) error) func(context.Context) error {
	var done bool
	var err error
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	return func(ctx context.Context) error {
		<-ch
		defer func() { ch <- struct{}{} }()
		if !done {
			done = true
			err = stop(ctx)
		}
		return err
	}
}
