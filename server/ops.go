package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"mailstead/manage"
	"mailstead/store"
)

// Operations commands: backup, restore and import run in the CLI process itself (a backup is
// written where the CLI's user may write, which the sandboxed service may not; a restore needs
// the server stopped; an import reads files only the CLI's user may read). verify and the
// batches of an import are management commands (manage.go's map), so they run inside a running
// server and its IMAP sessions see imported mail at once.

var opsCommands = map[string]func(ctx context.Context, dataDir string, args []string, out io.Writer) error{
	"backup":  opsBackup,
	"restore": opsRestore,
	"import":  opsImport,
}

// IsOpsCommand reports whether name is an operations command run by RunOps.
func IsOpsCommand(name string) bool { _, ok := opsCommands[name]; return ok }

// RunOps runs an operations command for the data directory dataDir, writing its report to out
// (and a progress line when out is a terminal).
func RunOps(ctx context.Context, dataDir, cmd string, args []string, out io.Writer) error {
	fn, ok := opsCommands[cmd]
	if !ok {
		return fmt.Errorf("%w: unknown command %q", ErrUsage, cmd)
	}
	return fn(ctx, dataDir, args, out)
}

func opsBackup(ctx context.Context, dataDir string, args []string, out io.Writer) error {
	if len(args) != 1 {
		return usage("backup DEST (a new or empty directory)")
	}
	dest := args[0]
	n, err := store.BackupDir(ctx, dataDir, dest)
	if err != nil {
		return err
	}
	fixOwnership(dataDir) // SQLite may have made its -shm file as the CLI's user
	fmt.Fprintf(out, "backed up %s to %s (%d bytes, integrity ok)\nto use it: mailstead restore %s, or mailstead serve --data %s\n",
		dataDir, dest, n, dest, dest)
	return nil
}

func opsRestore(ctx context.Context, dataDir string, args []string, out io.Writer) error {
	if len(args) != 1 {
		return usage("restore SRC (a backup directory; the server must be stopped)")
	}
	lock, err := holdDataDir(dataDir)
	if err != nil {
		return err
	}
	defer lock()
	aside, err := store.Restore(ctx, args[0], dataDir)
	if err != nil {
		return err
	}
	fixOwnership(dataDir)
	fmt.Fprintf(out, "restored %s into %s\n", args[0], dataDir)
	if aside != "" {
		fmt.Fprintf(out, "the database that was there is kept as %s (delete it once the restored server works)\n", aside)
	}
	return nil
}

// holdDataDir makes sure no server runs on dataDir and keeps one from starting until release is
// called: it listens on the control socket itself, which a starting server finds answering (and
// refuses to start), and which answers every command with an error.
func holdDataDir(dataDir string) (release func(), err error) {
	path := filepath.Join(dataDir, ControlSocket)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a mailstead server is running on %s: stop it first (systemctl stop mailstead)", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	os.Remove(path) // a stale socket of a server that died
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dataDir, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var req Request
			json.NewDecoder(c).Decode(&req) // read it first, so the client's write never fails
			json.NewEncoder(c).Encode(Response{Error: "a restore is in progress on " + dataDir})
			c.Close()
		}
	}()
	return func() {
		l.Close()
		os.Remove(path)
	}, nil
}

// fixOwnership gives the database files of dataDir to the directory's owner when the CLI runs as
// root next to a service running as its own user (install.sh's mailstead user): otherwise a file
// SQLite created as root would lock the service out.
func fixOwnership(dataDir string) {
	if os.Geteuid() != 0 {
		return
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(dataDir, store.DBFile+"*"))
	for _, m := range matches {
		os.Lchown(m, int(st.Uid), int(st.Gid))
	}
}

// manageVerify is `mailstead verify`: database integrity and cross-references.
func manageVerify(ctx context.Context, ops *manage.Ops, st *store.Store, args []string, _ string) (string, error) {
	if len(args) != 0 {
		return "", usage("verify")
	}
	rep, err := st.Verify(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range rep.Problems {
		fmt.Fprintln(&b, "problem:", p)
	}
	c := rep.Counts
	fmt.Fprintf(&b, "%d domains, %d accounts, %d mailboxes, %d messages, %d bodies, %d queued\n",
		c["domains"], c["accounts"], c["mailboxes"], c["messages"], c["blobs"], c["queue"])
	if len(rep.Problems) > 0 {
		return b.String(), fmt.Errorf("verify found %d problems", len(rep.Problems))
	}
	b.WriteString("verify: ok\n")
	return b.String(), nil
}

// importBatch is the payload of the internal "import-batch" command, sent by `mailstead import`
// in the request's stdin field.
type importBatch struct {
	Address  string          `json:"address"`
	Messages []importMessage `json:"messages"`
}

type importMessage struct {
	Mailboxes []string `json:"mailboxes"`
	Data      []byte   `json:"data"`
	Flags     []string `json:"flags,omitempty"`
	Date      int64    `json:"date"` // unix seconds; 0 means now
}

// manageImportBatch stores one batch of an import (inside the server when it runs).
func manageImportBatch(ctx context.Context, ops *manage.Ops, st *store.Store, _ []string, stdin string) (string, error) {
	var b importBatch
	if err := json.Unmarshal([]byte(stdin), &b); err != nil {
		return "", fmt.Errorf("import batch: %w", err)
	}
	msgs := make([]store.ImportMessage, len(b.Messages))
	for i, m := range b.Messages {
		msgs[i] = store.ImportMessage{Mailboxes: m.Mailboxes, Data: m.Data, Flags: m.Flags}
		if m.Date != 0 {
			msgs[i].Date = time.Unix(m.Date, 0)
		}
	}
	res, err := ops.Import(ctx, b.Address, msgs)
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(res)
	return string(out), err
}

// importSink sends batches to the running server, or stores them directly when none runs.
type importSink struct {
	dataDir string
	address string
	st      *store.Store // nil while going through the server
}

func newImportSink(ctx context.Context, dataDir, address string) (*importSink, error) {
	k := &importSink{dataDir: dataDir, address: address}
	// An empty batch checks the account, and whether a server answers.
	if _, err := k.send(ctx, nil); !errors.Is(err, ErrNotRunning) {
		return k, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, store.DBFile)); err != nil {
		return nil, fmt.Errorf("import: no mailstead data directory at %s (give --data DIR): %w", dataDir, err)
	}
	st, err := OpenStore(dataDir, nil)
	if err != nil {
		return nil, err
	}
	k.st = st
	if _, err := k.send(ctx, nil); err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

func (k *importSink) send(ctx context.Context, msgs []importMessage) (store.ImportResult, error) {
	var res store.ImportResult
	payload, err := json.Marshal(importBatch{Address: k.address, Messages: msgs})
	if err != nil {
		return res, err
	}
	req := Request{Command: "import-batch", Stdin: string(payload)}
	var out string
	if k.st != nil {
		out, err = Execute(ctx, k.st, req)
	} else {
		out, err = Call(k.dataDir, req)
	}
	if err != nil {
		return res, err
	}
	return res, json.Unmarshal([]byte(out), &res)
}

func (k *importSink) close() {
	if k.st != nil {
		k.st.Close()
		fixOwnership(k.dataDir)
	}
}

func opsImport(ctx context.Context, dataDir string, args []string, out io.Writer) error {
	if len(args) < 3 || len(args) > 4 || (args[0] != "mbox" && args[0] != "maildir") {
		return usage("import mbox|maildir ADDRESS PATH [MAILBOX]")
	}
	format, address, path := args[0], args[1], args[2]
	target := ""
	if len(args) == 4 {
		target = args[3]
	}
	src, err := openImportSource(format, path, target)
	if err != nil {
		return err
	}
	defer src.Close()
	sink, err := newImportSink(ctx, dataDir, address)
	if err != nil {
		return err
	}
	defer sink.close()
	p := newProgress(out, src.Total())
	var total store.ImportResult
	var batch []importMessage
	var batchBytes int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := sink.send(ctx, batch)
		if err != nil {
			return fmt.Errorf("import (run the same command again to resume): %w", err)
		}
		total.Added += res.Added
		total.Skipped += res.Skipped
		total.Created += res.Created
		p.update(src.Done(), total)
		batch, batchBytes = batch[:0], 0
		return nil
	}
	for {
		m, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		for i, name := range m.Mailboxes {
			m.Mailboxes[i] = importMailbox(name)
		}
		batch = append(batch, m)
		batchBytes += len(m.Data)
		if len(batch) >= importBatchMessages || batchBytes >= importBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	p.finish()
	fmt.Fprintf(out, "imported %d messages into %s (%d already there, %d mailboxes created)\n",
		total.Added, address, total.Skipped, total.Created)
	return nil
}

// Batches are big enough that each commit carries many messages, small enough that one request
// over the control socket stays a few megabytes.
const (
	importBatchMessages = 200
	importBatchBytes    = 8 << 20
)

// progress prints "\rimported N…" on a terminal only; logs and pipes get the final line alone.
type progress struct {
	w     io.Writer
	tty   bool
	total int64
	last  time.Time
}

func newProgress(w io.Writer, total int64) *progress {
	p := &progress{w: w, total: total}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done int64, r store.ImportResult) {
	if !p.tty || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf(" (%d%%)", done*100/p.total)
	}
	fmt.Fprintf(p.w, "\rimporting: %d added, %d already there%s   ", r.Added, r.Skipped, pct)
}

func (p *progress) finish() {
	if p.tty && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
