package testkit

import (
	"io/fs"
	"path/filepath"
	"testing"
)

// CheckPrivateDir fails t unless dir and every directory below it are 0700 and every file in it
// 0600 (the data directory's rule), and it holds at least one file. Unix sockets are skipped:
// the 0700 directory is what keeps others from them.
func CheckPrivateDir(t testing.TB, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		switch {
		case d.IsDir():
			want = 0o700
		case info.Mode()&fs.ModeSocket != 0:
			return nil
		default:
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if files == 0 {
		t.Errorf("no files in %s", dir)
	}
}
