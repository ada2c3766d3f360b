package mailtest

import (
	"os"
	"os/exec"
	"testing"
)

// Interop reports whether the interop tests with third-party clients are to run
// (MAILSTEAD_INTEROP=1, as .ci/run sets it).
func Interop() bool { return os.Getenv("MAILSTEAD_INTEROP") == "1" }

// RequireTool returns the path of a third-party program an interop test drives. Without
// MAILSTEAD_INTEROP=1 the test is skipped; with it, a missing program fails the test, so a CI
// machine without the program cannot pass by skipping.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if !Interop() {
		t.Skipf("interop test: set MAILSTEAD_INTEROP=1 to run it with %s", name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("interop test needs %s: %v (.ci/run installs it)", name, err)
	}
	return path
}

// Python returns Debian's python3 (/usr/bin/python3), the interpreter interop tests use.
func Python(t testing.TB) string {
	t.Helper()
	RequireTool(t, "python3")
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatalf("interop test needs /usr/bin/python3 (Debian package python3): %v", err)
	}
	return "/usr/bin/python3"
}
