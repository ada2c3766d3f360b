package store

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The data directory holds password hashes, DKIM and TLS private keys and all mail, so nobody
// but the server's user may read it: the directory and every directory below it are 0700, every
// file 0600. A directory that existed before (made by hand, by mkdir under a 022 umask, or
// restored from a tar with its modes) is brought to that at every open, whatever it was.

const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// permFix is what tightenPermissions changed.
type permFix struct {
	dirWas fs.FileMode // the data directory's mode before, when it was changed
	files  int         // files and subdirectories whose mode was changed
}

// tightenPermissions makes dir 0700 and everything below it 0700 (directories) or 0600 (files).
// Symbolic links are left alone (chmod would follow them out of the directory).
func tightenPermissions(dir string) (permFix, error) {
	var fix permFix
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fileMode
		if d.IsDir() {
			want = dirMode
		}
		if info.Mode().Perm() == want {
			return nil
		}
		if err := os.Chmod(path, want); err != nil {
			return fmt.Errorf("restrict permissions: %w", err)
		}
		if path == dir {
			fix.dirWas = info.Mode().Perm()
		} else {
			fix.files++
		}
		return nil
	})
	return fix, err
}

// createPrivate creates the file at path with mode 0600 if it does not exist, so that SQLite,
// which gives its -wal and -shm files the database file's mode, never makes a readable one.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return err
	}
	return f.Close()
}
