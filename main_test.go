package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailstead/mailtest/testkit"
)

// TestSetupTightensDataDirectory: `mailstead setup` on a data directory that exists with mode
// 0755 leaves it 0700 with every file in it 0600.
func TestSetupTightensDataDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o755)
	os.Chmod(dir, 0o755)
	var out, errOut bytes.Buffer
	code := run([]string{"setup", "--hostname", "mail.example.org", "--domain", "example.org", "--admin", "me@example.org", "--data", dir},
		strings.NewReader("correct horse battery staple\n"), &out, &errOut)
	if code != 0 {
		t.Fatalf("setup exit %d: %s%s", code, out.String(), errOut.String())
	}
	testkit.CheckPrivateDir(t, dir)
}
