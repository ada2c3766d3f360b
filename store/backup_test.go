package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testAccount(t *testing.T, st *Store, addr string) Account {
	t.Helper()
	ctx := context.Background()
	_, domain, _ := strings.Cut(addr, "@")
	if _, err := st.AddDomain(ctx, domain); err != nil && !errors.Is(err, ErrExists) {
		t.Fatal(err)
	}
	a, err := st.AddAccount(ctx, addr, "pw-"+addr, false)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func deliverN(t *testing.T, st *Store, accountID int64, n int, tag string) {
	t.Helper()
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("Subject: %s-%d\r\n\r\nbody %d\r\n", tag, i, i)
		if _, err := st.Deliver(context.Background(), &Delivery{MailFrom: "x@remote.test", Data: []byte(msg),
			Local: []LocalRecipient{{AccountID: accountID}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackupWhileWriting: a backup taken while deliveries commit is a consistent snapshot that
// opens as a data directory and passes verify; every delivery acknowledged before the backup
// started is in it.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t, t.TempDir())
	a := testAccount(t, st, "alice@example.test")
	deliverN(t, st, a.ID, 50, "before")

	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				st.Deliver(ctx, &Delivery{Data: []byte(fmt.Sprintf("Subject: during %d\r\n\r\nx\r\n", i)),
					Local: []LocalRecipient{{AccountID: a.ID}}})
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	dest := filepath.Join(t.TempDir(), "bk")
	n, err := st.Backup(ctx, dest)
	stop.Store(true)
	wg.Wait()
	if err != nil || n == 0 {
		t.Fatalf("backup: %d bytes, %v", n, err)
	}
	if _, err := st.Backup(ctx, dest); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second backup into the same directory: %v, want ErrNotEmpty", err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o600)
	if _, err := st.Backup(ctx, other); !errors.Is(err, ErrNotEmptyDir) {
		t.Fatalf("backup into a directory holding other files: %v, want ErrNotEmptyDir", err)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 1 {
		t.Errorf("the refused backup left %d entries", len(entries))
	}
	for _, leftover := range []string{DBFile + ".partial", DBFile + "-wal"} {
		if _, err := os.Stat(filepath.Join(dest, leftover)); err == nil {
			t.Errorf("backup left %s behind", leftover)
		}
	}
	bk := openTestStore(t, dest)
	rep, err := bk.Verify(ctx)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify backup: %v %v", rep.Problems, err)
	}
	if rep.Counts["messages"] < 50 {
		t.Fatalf("backup holds %d messages, want at least the 50 committed before it", rep.Counts["messages"])
	}
}

func TestBackupDirAndWriteBackup(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	st := openTestStore(t, src)
	a := testAccount(t, st, "bob@example.test")
	deliverN(t, st, a.ID, 5, "m")

	// BackupDir reads the directory without opening it as a Store (the CLI next to a server).
	dest := filepath.Join(t.TempDir(), "copy")
	if _, err := BackupDir(ctx, src, dest); err != nil {
		t.Fatal(err)
	}
	if c := countMessages(t, dest); c != 5 {
		t.Fatalf("BackupDir copy holds %d messages", c)
	}

	var buf bytes.Buffer
	if err := st.WriteBackup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	unpacked := t.TempDir()
	var dbName string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			dbName = h.Name
			b, _ := io.ReadAll(tr)
			os.MkdirAll(filepath.Join(unpacked, filepath.Dir(h.Name)), 0o700)
			os.WriteFile(filepath.Join(unpacked, h.Name), b, 0o600)
		}
	}
	if !strings.HasPrefix(dbName, "mailstead-backup-") || !strings.HasSuffix(dbName, "/"+DBFile) {
		t.Fatalf("archive holds %q", dbName)
	}
	if c := countMessages(t, filepath.Join(unpacked, filepath.Dir(dbName))); c != 5 {
		t.Fatalf("archive copy holds %d messages", c)
	}
}

func countMessages(t *testing.T, dir string) int {
	t.Helper()
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.CountRows(context.Background(), "messages")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRestoreSetsCurrentAside(t *testing.T) {
	ctx := context.Background()
	bkSrc := t.TempDir()
	st := openTestStore(t, bkSrc)
	a := testAccount(t, st, "carol@example.test")
	deliverN(t, st, a.ID, 3, "old")
	backup := filepath.Join(t.TempDir(), "bk")
	if _, err := st.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	deliverN(t, st, a.ID, 4, "new") // the live directory now has 7
	st.Close()

	aside, err := Restore(ctx, backup, bkSrc)
	if err != nil {
		t.Fatal(err)
	}
	if aside == "" {
		t.Fatal("the database that was there was not set aside")
	}
	if c := countMessages(t, bkSrc); c != 3 {
		t.Fatalf("restored directory holds %d messages, want 3", c)
	}
	asideDir := t.TempDir()
	os.Rename(aside, filepath.Join(asideDir, DBFile))
	if c := countMessages(t, asideDir); c != 7 {
		t.Fatalf("set-aside database holds %d messages, want 7", c)
	}

	// A damaged source is refused before anything changes.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, DBFile), []byte("not a database at all, just bytes"), 0o600)
	if _, err := Restore(ctx, bad, bkSrc); err == nil {
		t.Fatal("restore of a damaged database succeeded")
	}
	if c := countMessages(t, bkSrc); c != 3 {
		t.Fatalf("failed restore changed the directory: %d messages", c)
	}
}

// TestVerifyFindsBrokenReferences breaks each cross-reference behind the store's back and checks
// that verify names it.
func TestVerifyFindsBrokenReferences(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t, t.TempDir())
	a := testAccount(t, st, "dave@example.test")
	deliverN(t, st, a.ID, 3, "m")
	if rep, err := st.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("fresh store: %v %v", rep.Problems, err)
	}
	breakages := []struct{ sql, want string }{
		{"UPDATE messages SET uid = 1000 WHERE uid = 1", "UIDNEXT"},
		{"UPDATE messages SET modseq = 1000000 WHERE uid = 2", "HIGHESTMODSEQ"},
		{"INSERT INTO blobs (size, data) VALUES (1, x'41')", "nothing refers to"},
		{"UPDATE blobs SET size = 99999 WHERE id = (SELECT max(blob_id) FROM messages)", "recorded size"},
	}
	for _, b := range breakages {
		if err := st.updateOnce(ctx, func(t *writeTx) error { _, err := t.Exec(b.sql); return err }); err != nil {
			t.Fatal(err)
		}
		rep, err := st.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(rep.Problems, "\n"), b.want) {
			t.Errorf("after %q verify says %q, want a finding about %s", b.sql, rep.Problems, b.want)
		}
	}
}

// TestOpenEveryOlderSchema: a data directory written at each earlier schema version opens with
// this binary, migrates to the newest and verifies clean (DESIGN.md: forward-only migrations).
func TestOpenEveryOlderSchema(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range ms[:len(ms)-1] {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			old, err := Open(dir, Options{MaxSchema: m.version})
			if err != nil {
				t.Fatal(err)
			}
			a := testAccount(t, old, "erin@example.test")
			deliverN(t, old, a.ID, 2, "old")
			old.Close()
			st := openTestStore(t, dir)
			var v int
			if err := st.db.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v); err != nil || v != SchemaVersion() {
				t.Fatalf("schema after open: %d %v, want %d", v, err, SchemaVersion())
			}
			if rep, err := st.Verify(ctx); err != nil || len(rep.Problems) > 0 {
				t.Fatalf("verify: %v %v", rep.Problems, err)
			}
			if n, _ := st.CountRows(ctx, "messages"); n != 2 {
				t.Fatalf("%d messages after upgrade", n)
			}
		})
	}
}

// TestBackupDirLeavesSourceAsItWas: the CLI copying a stopped server's directory leaves no WAL
// or shared-memory file behind in it (files the CLI's user would own).
func TestBackupDirLeavesSourceAsItWas(t *testing.T) {
	src := t.TempDir()
	st, err := Open(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := testAccount(t, st, "fay@example.test")
	deliverN(t, st, a.ID, 2, "m")
	st.Close()
	before, _ := filepath.Glob(filepath.Join(src, "*"))
	if _, err := BackupDir(context.Background(), src, filepath.Join(t.TempDir(), "bk")); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(src, "*"))
	if strings.Join(before, " ") != strings.Join(after, " ") {
		t.Fatalf("files before %v, after %v", before, after)
	}
}
