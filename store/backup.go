package store

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A backup is a data directory: DEST/mailstead.db, written with SQLite's online backup API from
// one read transaction, so it is consistent while the server keeps committing (WAL readers do
// not block the writer). `serve --data DEST` opens it as is.

// ErrNotEmpty is returned when a backup or restore would overwrite a database.
var ErrNotEmpty = errors.New("already holds a database")

// ErrNotEmptyDir is returned when a backup's destination directory holds other files.
var ErrNotEmptyDir = errors.New("is not empty: give a new or empty directory")

// Backup writes a consistent copy of the open store into the directory dest, which must not hold
// a database yet. It returns the size of the copy.
func (s *Store) Backup(ctx context.Context, dest string) (int64, error) {
	return backupInto(ctx, s.db, dest)
}

// BackupDir copies the data directory src into dest without opening src as a Store: no
// migration runs and no writer starts, so it is safe next to a running server (any version).
func BackupDir(ctx context.Context, src, dest string) (int64, error) {
	db, err := openForCopy(filepath.Join(src, DBFile))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return backupInto(ctx, db, dest)
}

// WriteBackup streams a backup as a gzipped tar holding one directory,
// mailstead-backup-YYYYMMDD-HHMMSS/mailstead.db, which `serve --data` opens once unpacked.
// The admin page offers it as a download. The copy is made first in a temporary directory
// inside the data directory (the one place a sandboxed service may write, and a disk, not RAM).
func (s *Store) WriteBackup(ctx context.Context, w io.Writer) error {
	tmp, err := os.MkdirTemp(s.dir, ".backup-")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := s.Backup(ctx, tmp); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(tmp, DBFile))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	now := time.Now().UTC()
	dir := "mailstead-backup-" + now.Format("20060102-150405")
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o700, ModTime: now}); err != nil {
		return fmt.Errorf("backup archive: %w", err)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + "/" + DBFile, Mode: 0o600,
		Size: fi.Size(), ModTime: now}); err != nil {
		return fmt.Errorf("backup archive: %w", err)
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("backup archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup archive: %w", err)
	}
	return gz.Close()
}

// Restore puts the data directory src back as dataDir's database. The caller makes sure no
// server runs on dataDir. src must pass the integrity and foreign-key checks. A database already
// in dataDir is not deleted: it is renamed to mailstead.db.before-restore-TIMESTAMP (with its
// WAL), and that name is returned.
func Restore(ctx context.Context, src, dataDir string) (setAside string, err error) {
	srcPath := filepath.Join(src, DBFile)
	if _, err := os.Stat(srcPath); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	db, err := openForCopy(srcPath)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if problems, err := checkDatabase(ctx, db, false); err != nil {
		return "", fmt.Errorf("restore: check %s: %w", srcPath, err)
	} else if len(problems) > 0 {
		return "", fmt.Errorf("restore: %s fails its checks, nothing changed: %v", srcPath, problems)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	tmp := filepath.Join(dataDir, DBFile+".restoring")
	removeDBFiles(tmp)
	if _, err := copyDatabase(ctx, db, tmp); err != nil {
		removeDBFiles(tmp)
		return "", fmt.Errorf("restore: %w", err)
	}
	dst := filepath.Join(dataDir, DBFile)
	if _, err := os.Stat(dst); err == nil {
		setAside = dst + ".before-restore-" + time.Now().UTC().Format("20060102-150405")
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(dst+suffix, setAside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("restore: set the current database aside: %w", err)
			}
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return setAside, fmt.Errorf("restore: %w", err)
	}
	return setAside, syncDir(dataDir)
}

// openForCopy opens a database file for reading only, without migrating it.
func openForCopy(path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=15000&_query_only=1&cache=private")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	return db, nil
}

// backupInto writes src into dest/mailstead.db through a temporary name, then checks the copy.
func backupInto(ctx context.Context, src *sql.DB, dest string) (int64, error) {
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	final := filepath.Join(dest, DBFile)
	if _, err := os.Stat(final); err == nil {
		return 0, fmt.Errorf("backup: %s %w", dest, ErrNotEmpty)
	}
	// Anything else there would be mixed into what a restore or serve --data takes as the
	// backup (and a mistyped DEST such as a home directory would get a database dropped in).
	entries, err := os.ReadDir(dest)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), DBFile+".partial") { // a failed backup's leftover is removed below
			return 0, fmt.Errorf("backup: %s %w", dest, ErrNotEmptyDir)
		}
	}
	tmp := final + ".partial"
	removeDBFiles(tmp)
	n, err := copyDatabase(ctx, src, tmp)
	if err != nil {
		removeDBFiles(tmp)
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return n, syncDir(dest)
}

// copyDatabase copies every page of src's main database into a new file at path in one step (one
// read transaction: a consistent snapshot), checks the copy's integrity, and leaves it as a
// single synced file with no WAL beside it.
func copyDatabase(ctx context.Context, src *sql.DB, path string) (int64, error) {
	srcConn, err := src.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer srcConn.Close()
	dst, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=15000&cache=private")
	if err != nil {
		return 0, err
	}
	defer dst.Close()
	dst.SetMaxOpenConns(1)
	dstConn, err := dst.Conn(ctx)
	if err != nil {
		return 0, err
	}
	err = copyPages(dstConn, srcConn)
	if err != nil {
		dstConn.Close()
		return 0, err
	}
	var check string
	if err := dstConn.QueryRowContext(ctx, sqlQuickCheck).Scan(&check); err != nil || check != "ok" {
		dstConn.Close()
		return 0, fmt.Errorf("check of the copy: %q %v", check, err)
	}
	// The copy carries the source's WAL mode; fold any WAL back in so one file is the backup.
	if _, err := dstConn.ExecContext(ctx, sqlCheckpoint); err != nil {
		dstConn.Close()
		return 0, fmt.Errorf("checkpoint the copy: %w", err)
	}
	dstConn.Close()
	if err := dst.Close(); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func removeDBFiles(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
