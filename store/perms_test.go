package store

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailstead/mailtest/testkit"
)

// TestOpenTightensPermissions: a data directory made 0755 with a 0644 database and a readable
// subdirectory (as a hand-made one or a careless restore leaves it) is 0700 with 0600 files after
// Open, and the log says it was fixed; a second open changes nothing and says nothing.
func TestOpenTightensPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "spool"), 0o755)
	os.WriteFile(filepath.Join(dir, "spool", "1"), []byte("x"), 0o666)

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	st, err := Open(dir, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	testkit.CheckPrivateDir(t, dir)
	if !strings.Contains(logs.String(), "tightened") || !strings.Contains(logs.String(), "dir_mode_was=0755") {
		t.Errorf("no log line about the fix:\n%s", logs.String())
	}

	logs.Reset()
	st, err = Open(dir, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if strings.Contains(logs.String(), "tightened") {
		t.Errorf("second open logged a fix:\n%s", logs.String())
	}
}
