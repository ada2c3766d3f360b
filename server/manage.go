package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"

	"mailstead/mailauth"
	"mailstead/manage"
	"mailstead/store"
)

// Request is one management command, as the CLI sends it over the control socket.
type Request struct {
	Command string   `json:"command"` // "domain", "account", …
	Args    []string `json:"args"`    // sub-command and operands
	Stdin   string   `json:"stdin"`   // password, when the command takes one
}

// Response is a management command's output.
type Response struct {
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
	Usage  bool   `json:"usage,omitempty"` // the error refused the command line or a value (exit 2)
}

// ErrUsage marks a command line that does not fit the command's usage.
var ErrUsage = errors.New("usage")

type manageFunc func(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, stdin string) (string, error)

// commands are the management commands of the CLI and the control socket: each parses its
// command line and calls the operations layer (mailstead/manage), as the admin pages do.
var commands = map[string]manageFunc{
	"domain":      manageDomain,
	"account":     manageAccount,
	"alias":       manageAlias,
	"settings":    manageSettings,
	"setup":       manageSetup,
	"stats":       manageStats,
	"queue":       manageQueue,
	"dns-records": manageDNSZone,
	"verify":      manageVerify,
	"certs":       manageCerts,
	// import-batch carries one batch of `mailstead import` (ops.go); not typed by people.
	"import-batch": manageImportBatch,
}

// IsManageCommand reports whether name is a management command (run in the server when it is up).
func IsManageCommand(name string) bool { _, ok := commands[name]; return ok }

// Execute runs a management command directly on st, as the CLI does when no server runs.
func Execute(ctx context.Context, st *store.Store, req Request) (string, error) {
	ops, err := newOps(st, nil, nil, nil, nil)
	if err != nil {
		return "", err
	}
	return execute(ctx, ops, st, req)
}

func execute(ctx context.Context, ops *manage.Ops, st *store.Store, req Request) (string, error) {
	fn, ok := commands[req.Command]
	if !ok {
		return "", fmt.Errorf("%w: unknown command %q", ErrUsage, req.Command)
	}
	return fn(ctx, ops, st, req.Args, req.Stdin)
}

// IsUsage reports whether err is a command line or a value refused before anything was done
// (the CLI exits 2 for it).
func IsUsage(err error) bool { return errors.Is(err, ErrUsage) || manage.IsInvalid(err) }

// dkimKeys gives the operations layer mailauth's DKIM key making.
type dkimKeys struct{}

func (dkimKeys) NewKeys(domain string) (map[string][]byte, error) { return mailauth.NewKeys(domain) }
func (dkimKeys) KeyPrefix(domain string) string                   { return mailauth.KeyPrefix(domain) }

// newOps builds the operations layer on st; certs and junk are the running certificate manager
// and junk filter (nil from the CLI without a server).
func newOps(st *store.Store, certs manage.Certs, junk manage.JunkFilter, log *slog.Logger, applied func(context.Context)) (*manage.Ops, error) {
	reg, err := Registry()
	if err != nil {
		return nil, err // a setting defined twice: a programming error every test run finds
	}
	return manage.New(manage.Config{Store: st, DKIM: dkimKeys{}, Certs: certs, Junk: junk, Log: log, Settings: reg, Applied: applied}), nil
}

func usage(format string) error { return fmt.Errorf("%w: mailstead %s", ErrUsage, format) }

func manageDomain(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, _ string) (string, error) {
	if len(args) == 1 && args[0] == "list" {
		ds, err := st.Domains(ctx)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, d := range ds {
			fmt.Fprintln(&b, d.Name)
		}
		return b.String(), nil
	}
	if len(args) != 2 {
		return "", usage("domain add|list|remove DOMAIN")
	}
	switch args[0] {
	case "add":
		d, err := ops.AddDomain(ctx, args[1], "")
		if err != nil {
			return "", err
		}
		return "added domain " + d.Name + " with its DKIM keys and postmaster@" + d.Name + "\n", nil
	case "remove":
		if err := ops.RemoveDomain(ctx, args[1]); err != nil {
			return "", err
		}
		return "removed domain " + args[1] + "\n", nil
	}
	return "", usage("domain add|list|remove DOMAIN")
}

func manageAccount(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, stdin string) (string, error) {
	if len(args) == 1 && args[0] == "list" {
		as, err := st.Accounts(ctx)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, a := range as {
			admin := ""
			if a.IsAdmin {
				admin = " (admin)"
			}
			fmt.Fprintf(&b, "%s%s\n", a.Address, admin)
		}
		return b.String(), nil
	}
	const accountUsage = "account list | add ADDRESS [--admin] | passwd ADDRESS (password on stdin) | remove ADDRESS [--force] | admin ADDRESS on|off"
	if len(args) == 0 {
		return "", usage(accountUsage)
	}
	var pos []string
	flags := map[string]bool{}
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") {
			flags[strings.TrimLeft(a, "-")] = true
		} else {
			pos = append(pos, a)
		}
	}
	only := func(allowed ...string) bool {
		for f := range flags {
			if !slices.Contains(allowed, f) {
				return false
			}
		}
		return true
	}
	switch {
	case args[0] == "add" && len(pos) == 1 && only("admin"):
		a, err := ops.AddAccount(ctx, manage.NewAccount{Address: pos[0], Password: firstLine(stdin), Admin: flags["admin"]})
		if err != nil {
			return "", err
		}
		if a.IsAdmin {
			return "added account " + a.Address + " (admin)\n", nil
		}
		return "added account " + a.Address + "\n", nil
	case args[0] == "passwd" && len(pos) == 1 && only():
		if err := ops.SetPassword(ctx, pos[0], firstLine(stdin), ""); err != nil {
			return "", err
		}
		return "changed password of " + pos[0] + "\n", nil
	case args[0] == "remove" && len(pos) == 1 && only("force"):
		h, err := ops.RemoveAccount(ctx, manage.RemoveAccount{Address: pos[0], Force: flags["force"]})
		var held *store.HoldsMailError
		if errors.As(err, &held) {
			return "", fmt.Errorf("%w; nothing was removed: add --force to delete it with its mail", err)
		}
		if err != nil {
			return "", err
		}
		out := fmt.Sprintf("removed account %s and its %d message(s)\n", pos[0], h.Messages)
		if len(h.Aliases) > 0 {
			out += fmt.Sprintf("these aliases no longer route to it (an alias with no other target is gone): %s\n", strings.Join(h.Aliases, ", "))
		}
		return out, nil
	case args[0] == "admin" && len(pos) == 2 && only() && (pos[1] == "on" || pos[1] == "off"):
		if err := ops.SetAdmin(ctx, pos[0], pos[1] == "on"); err != nil {
			return "", err
		}
		return "admin rights of " + pos[0] + ": " + pos[1] + "\n", nil
	}
	return "", usage(accountUsage)
}

func manageAlias(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, _ string) (string, error) {
	if len(args) == 1 && args[0] == "list" {
		as, err := st.Aliases(ctx)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, a := range as {
			fmt.Fprintf(tw, "%s\t%s\n", a.Address, strings.Join(a.Targets, ", "))
		}
		tw.Flush()
		return b.String(), nil
	}
	if len(args) < 2 {
		return "", usage("alias add|list|remove ALIAS TARGET... (ALIAS @domain is the catch-all)")
	}
	switch args[0] {
	case "add":
		if len(args) < 3 {
			return "", usage("alias add ALIAS TARGET...")
		}
		if err := ops.AddAlias(ctx, args[1], args[2:]); err != nil {
			return "", err
		}
		return "added alias " + args[1] + " → " + strings.Join(args[2:], ", ") + "\n", nil
	case "remove":
		if err := ops.RemoveAlias(ctx, args[1], args[2:]); err != nil {
			return "", err
		}
		return "removed alias " + args[1] + "\n", nil
	}
	return "", usage("alias add|list|remove ALIAS TARGET...")
}

// manageSettings is `mailstead settings list|get|set KEY [VALUE]`. A secret's value is read
// from stdin (`settings set KEY` with no VALUE), never taken from the command line, and never
// printed.
func manageSettings(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, stdin string) (string, error) {
	const use = "settings list|get|set KEY [VALUE] (a secret: no VALUE, on stdin)"
	switch {
	case len(args) == 1 && args[0] == "list":
		list, err := ops.ListSettings(ctx)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		service := ""
		for _, st := range list {
			if st.Service != service {
				service = st.Service
				fmt.Fprintf(tw, "# %s\n", service)
			}
			note := ""
			if st.Restart {
				note = " (at restart)"
			}
			fmt.Fprintf(tw, "%s\t%s\t# %s: %s%s\n", st.Key, st.Value, st.Kind, st.Help, note)
		}
		tw.Flush()
		return b.String(), nil
	case len(args) == 2 && args[0] == "get":
		st, err := ops.GetSetting(ctx, args[1])
		return st.Value + "\n", err
	case (len(args) == 2 || len(args) == 3) && args[0] == "set":
		key := args[1]
		def, err := ops.Settings().Lookup(key)
		if err != nil {
			return "", err
		}
		var value string
		switch {
		case def.Secret && len(args) == 3:
			return "", fmt.Errorf("%w: %s is a secret: give it on stdin (mailstead settings set %s), not on the command line", ErrUsage, key, key)
		case def.Secret:
			value = firstLine(stdin)
		case len(args) == 3:
			value = args[2]
		default:
			return "", usage(use)
		}
		if _, err := ops.SetSetting(ctx, key, value); err != nil {
			return "", err
		}
		shown := key + " = " + value
		if def.Secret {
			shown = key + " set (not shown)"
		} else if value == "" {
			shown = key + " = " + def.Default + " (the default)"
		}
		if def.Restart {
			return shown + "\napplies at the next restart of mailstead (systemctl restart mailstead)\n", nil
		}
		return shown + "\n", nil
	}
	return "", usage(use)
}

// manageSetup is the scripted form of the web wizard: hostname, first domain, admin account.
func manageSetup(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, stdin string) (string, error) {
	var p manage.SetupParams
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return "", usage("setup --hostname FQDN --domain DOMAIN --admin ADDRESS (password on stdin)")
		}
		switch strings.TrimLeft(args[i], "-") {
		case "hostname":
			p.Hostname = args[i+1]
		case "domain":
			p.Domain = args[i+1]
		case "admin":
			p.Admin = args[i+1]
		default:
			return "", usage("setup --hostname FQDN --domain DOMAIN --admin ADDRESS (password on stdin)")
		}
	}
	p.Password = firstLine(stdin)
	if p.Hostname == "" || p.Domain == "" || p.Admin == "" {
		return "", usage("setup --hostname FQDN --domain DOMAIN --admin ADDRESS (password on stdin)")
	}
	a, err := ops.Setup(ctx, p)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("set up %s for %s with admin %s (postmaster@%s goes to it)\n", p.Hostname, p.Domain, a.Address, p.Domain), nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimRight(line, "\r")
}

// manageStats prints counters of the store: meaningful through a running server, whose commit
// counter covers its whole run (the group-commit benchmark reads it).
func manageStats(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, _ string) (string, error) {
	if len(args) != 0 {
		return "", usage("stats")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "commits %d\n", st.Commits())
	for _, table := range []string{"domains", "accounts", "messages", "blobs", "queue"} {
		n, err := st.CountRows(ctx, table)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %d\n", table, n)
	}
	return b.String(), nil
}
