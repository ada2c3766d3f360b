package admin

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailstead/store"
)

// TestBackupDownload: an admin downloads a .tar.gz whose directory opens as a data directory
// holding the same accounts; a plain user cannot.
func TestBackupDownload(t *testing.T) {
	e := newEnv(t)
	if resp, _ := e.do(e.login("user@example.test", "user-password"), "POST", "/admin/backup", nil); resp.StatusCode == 200 {
		t.Fatal("a non-admin downloaded a backup")
	}
	resp, body := e.do(e.login("admin@example.test", "admin-password"), "POST", "/admin/backup", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/gzip" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("backup: %d %v", resp.StatusCode, resp.Header)
	}
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	tr := tar.NewReader(zr)
	var dataDir string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		path := filepath.Join(out, filepath.FromSlash(h.Name))
		os.MkdirAll(filepath.Dir(path), 0o700)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if filepath.Base(path) == store.DBFile {
			dataDir = filepath.Dir(path)
		}
	}
	if dataDir == "" {
		t.Fatal("no database in the backup")
	}
	st, err := store.Open(dataDir, store.Options{})
	if err != nil {
		t.Fatalf("backup does not open as a data directory: %v", err)
	}
	defer st.Close()
	if _, err := st.Authenticate(context.Background(), "admin@example.test", "admin-password"); err != nil {
		t.Fatalf("account missing from the backup: %v", err)
	}
}
