// Command mailstead is a personal mail server in one binary. This file only parses the command
// line; everything else lives in the packages it calls.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"mailstead/server"
	"mailstead/store"
)

const usageText = `mailstead — a personal mail server in one binary

usage:
  mailstead serve    [--data DIR] [--dev] [--bind IP] [--port-offset N] [--dns HOST:PORT] [--log-json]
  mailstead setup    --hostname FQDN --domain DOMAIN --admin ADDRESS   (password on stdin)
  mailstead domain   add|list|remove DOMAIN
  mailstead account  list | add ADDRESS [--admin] | passwd ADDRESS     (password on stdin)
  mailstead account  remove ADDRESS [--force] | admin ADDRESS on|off   (--force: it holds mail)
  mailstead alias    add|list|remove ALIAS TARGET...                   (ALIAS @domain: catch-all)
  mailstead settings list|get|set KEY [VALUE]                          (a secret: on stdin)
  mailstead queue    list|retry|remove [ID]
  mailstead certs                                                      (certificate status)
  mailstead dns-records [DOMAIN]                                       (zone-file lines to publish)
  mailstead import   mbox|maildir ADDRESS PATH [MAILBOX]               (Gmail Takeout mbox, Maildir)
  mailstead backup   DEST                                              (while the server runs)
  mailstead restore  SRC                                               (with the server stopped)
  mailstead verify
  mailstead profile cpu-start FILE|cpu-stop|allocs FILE|heap FILE     (pprof of the running server)
  mailstead urls                                                       (setup or admin page links)
  mailstead version

Every command takes --data DIR (default $MAILSTEAD_DATA, else ./mailstead-data). Management
commands go through the running server when there is one, else open the data directory directly.
`

// flags are the options DESIGN.md fixes; they may appear anywhere on the command line.
type flags struct {
	data       string
	dev        bool
	bind       string
	portOffset int
	dns        string
	logJSON    bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, args, err := parseFlags(argv)
	if err != nil {
		fmt.Fprintf(stderr, "mailstead: %v\n\n%s", err, usageText)
		return 2
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usageText)
		return 0
	}
	cmd, rest := args[0], args[1:]
	switch {
	case cmd == "serve":
		err = serve(f, stdout, stderr)
	case cmd == "urls":
		var out string
		if out, err = server.AccessURLs(context.Background(), server.Options{
			DataDir: f.data, Bind: f.bind, PortOffset: f.portOffset, DNS: f.dns}); err == nil {
			fmt.Fprint(stdout, out)
		}
	case cmd == "version":
		fmt.Fprintln(stdout, "mailstead", version(), "schema", store.SchemaVersion())
	case cmd == server.ProfileCommand:
		var out string
		out, err = server.Call(f.data, server.Request{Command: cmd, Args: rest})
		fmt.Fprint(stdout, out)
	case server.IsManageCommand(cmd):
		err = manage(f, cmd, rest, stdin, stdout)
	case server.IsOpsCommand(cmd):
		err = server.RunOps(context.Background(), f.data, cmd, rest, stdout)
	default:
		fmt.Fprintf(stderr, "mailstead: unknown command %q\n\n%s", cmd, usageText)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "mailstead:", err)
		if server.IsUsage(err) {
			return 2
		}
		return 1
	}
	return 0
}

func parseFlags(argv []string) (flags, []string, error) {
	f := flags{data: os.Getenv("MAILSTEAD_DATA")}
	if f.data == "" {
		f.data = "mailstead-data"
	}
	var rest []string
	for i := 0; i < len(argv); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(argv[i], "-"), "=")
		if !strings.HasPrefix(argv[i], "-") {
			rest = append(rest, argv[i])
			continue
		}
		takeValue := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(argv) {
				return "", fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			return argv[i], nil
		}
		var err error
		switch name {
		case "data":
			f.data, err = takeValue()
		case "bind":
			f.bind, err = takeValue()
		case "dns":
			f.dns, err = takeValue()
		case "port-offset":
			var v string
			if v, err = takeValue(); err == nil {
				if f.portOffset, err = strconv.Atoi(v); err != nil {
					err = fmt.Errorf("--port-offset %q is not a whole number", v)
				}
			}
		case "dev":
			f.dev = true
		case "log-json":
			f.logJSON = true
		default:
			rest = append(rest, argv[i]) // a command's own flag, such as setup --hostname
		}
		if err != nil {
			return f, nil, err
		}
	}
	return f, rest, nil
}

func serve(f flags, stdout, stderr io.Writer) error {
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if f.logJSON {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	srv, err := server.New(server.Options{
		DataDir: f.data, Dev: f.dev, Bind: f.bind, PortOffset: f.portOffset, DNS: f.dns,
		Logger: slog.New(handler), Out: stdout, Version: version(),
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return srv.Run(ctx)
}

func manage(f flags, cmd string, args []string, stdin io.Reader, stdout io.Writer) error {
	req := server.Request{Command: cmd, Args: args}
	if needsPassword(cmd, args) {
		// The command line is checked first: a mistyped command never waits for a password.
		if err := checkBeforePassword(cmd, args); err != nil {
			return err
		}
		pw, err := readPassword(stdin, cmd+" "+strings.Join(args, " "))
		if err != nil {
			return err
		}
		req.Stdin = pw
	}
	out, err := server.Manage(context.Background(), f.data, req)
	fmt.Fprint(stdout, out)
	return err
}

// needsPassword says whether a command reads a secret from stdin: a password, or a secret
// setting (`settings set KEY` without a value), never an argument, so it stays out of the
// process list and the shell history.
func needsPassword(cmd string, args []string) bool {
	switch {
	case cmd == "setup", cmd == "account" && len(args) > 0 && (args[0] == "add" || args[0] == "passwd"):
		return true
	}
	return cmd == "settings" && len(args) == 2 && args[0] == "set"
}

// checkBeforePassword checks the arguments of a command that reads a password, before it is
// read: the command's own check runs only once the password is there.
func checkBeforePassword(cmd string, args []string) error {
	if cmd == "settings" {
		return nil // the server says whether KEY is a secret, which alone is read from stdin
	}
	if cmd == "setup" {
		have := map[string]bool{}
		for i := 0; i+1 < len(args); i++ {
			if v := args[i+1]; v != "" && !strings.HasPrefix(v, "-") {
				have[strings.TrimLeft(args[i], "-")] = true
			}
		}
		if !have["hostname"] || !have["domain"] || !have["admin"] {
			return fmt.Errorf("%w: mailstead setup --hostname FQDN --domain DOMAIN --admin ADDRESS (password on stdin)", server.ErrUsage)
		}
		return nil
	}
	var addrs []string
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) != 1 {
		return fmt.Errorf("%w: mailstead account %s ADDRESS (password on stdin)", server.ErrUsage, args[0])
	}
	if _, err := store.CanonicalAddress(addrs[0]); err != nil {
		return fmt.Errorf("%w: mailstead account %s ADDRESS: %q is not an email address", server.ErrUsage, args[0], addrs[0])
	}
	return nil
}

// readPassword reads a password from stdin: one line typed after a prompt on a terminal, else
// what a pipe gives. Nothing at all is a usage error, not a password that is too short.
func readPassword(stdin io.Reader, command string) (string, error) {
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(os.Stderr, "password: ")
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("read password: %w", err)
		}
		return line, nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 4096))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	if strings.Trim(string(b), "\r\n") == "" { // ten spaces are a (refused) password, not nothing
		return "", fmt.Errorf("%w: echo 'PASSWORD' | mailstead %s (the password is read from stdin, which was empty)", server.ErrUsage, command)
	}
	return string(b), nil
}

// isTerminal reports whether f is a terminal (not /dev/null, which is a character device too).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// buildVersion is set by release.sh (-ldflags -X main.buildVersion=...); a go build or go run
// leaves it empty and the module version, if any, is used.
var buildVersion string

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
