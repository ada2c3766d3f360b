// Package manage is the operations layer: every management action (setup, domains, accounts,
// aliases, app passwords, API tokens, the queue, settings, certificate refresh, import and
// backup) is one typed function here, with typed errors. The CLI, the control socket, the admin
// pages, the JSON API and dev mode all call it, so an action has the same effects whichever way
// it is reached. It never parses command lines or forms, never speaks SQL (the store does) and
// never reaches into other services: what an action needs from them comes in through Config.
package manage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"mailstead/settings"
	"mailstead/store"
)

// DKIM makes and names the signing keys of a domain (the queue's keys).
type DKIM interface {
	// NewKeys makes a new domain's keys as kv entries; nothing is stored.
	NewKeys(domain string) (map[string][]byte, error)
	// KeyPrefix is the kv prefix under which a domain's keys live.
	KeyPrefix(domain string) string
}

// Certs is the certificate manager of a running server.
type Certs interface {
	// Refresh asks for a new check of every certificate name now (a domain came or went).
	Refresh()
}

// Config is what the operations need.
type Config struct {
	Store Store
	DKIM  DKIM  // nil: domains get no signing keys (tests)
	Certs Certs // nil: no running certificate manager (the CLI without a server)
	Log   *slog.Logger
	// Settings are the definitions of every setting (gathered by the server from their owners).
	Settings *settings.Registry
	// Applied, when set, returns once the running server has applied every setting change
	// committed so far: a changed setting is in effect when its operation returns.
	Applied func(context.Context)
	// Junk is the running junk filter; nil when none runs (the CLI without a server).
	Junk JunkFilter
}

// Ops runs management actions.
type Ops struct {
	cfg Config
	st  Store
	log *slog.Logger
}

// New returns the operations on cfg.Store.
func New(cfg Config) *Ops {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Settings == nil {
		cfg.Settings, _ = settings.NewRegistry()
	}
	return &Ops{cfg: cfg, st: cfg.Store, log: cfg.Log}
}

// InvalidError refuses an argument before anything is stored: the CLI exits 2, the API answers
// 400, a page shows it next to the field.
type InvalidError struct {
	Field  string // the argument or setting refused
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err is a refused argument (as opposed to a conflict or a failure).
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie) || errors.Is(err, store.ErrBadAddress) ||
		errors.Is(err, settings.ErrUnknown) || errors.As(err, new(*settings.Error))
}

// Errors the actions return besides InvalidError; the store's ErrNotFound, ErrExists,
// ErrNotOurDomain, ErrDomainNotEmpty and ErrAlreadySetUp pass through wrapped.
var (
	ErrNotRunning = errors.New("needs the running server")
)

func (o *Ops) refreshCerts() {
	if o.cfg.Certs != nil {
		o.cfg.Certs.Refresh()
	}
}
