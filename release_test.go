package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestReleaseBuild: release.sh builds a static binary for this machine's architecture that
// prints its version with no Go toolchain on PATH, `file` (Debian package file) calls it
// statically linked, and install.sh --binary installs it. arm64 is built too when its Debian
// cross compiler (gcc-aarch64-linux-gnu) is installed.
func TestReleaseBuild(t *testing.T) {
	// Two static builds take minutes on a busy machine: CI's interop pass runs it.
	if os.Getenv("MAILSTEAD_INTEROP") != "1" {
		t.Skip("set MAILSTEAD_INTEROP=1 to build release binaries")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	if _, err := exec.LookPath("file"); err != nil {
		if os.Getenv("MAILSTEAD_INTEROP") == "1" {
			t.Fatal("file not installed (apt-get install file)")
		}
		t.Skip("file not installed")
	}
	arches := []string{runtime.GOARCH}
	if runtime.GOARCH == "amd64" {
		if _, err := exec.LookPath("aarch64-linux-gnu-gcc"); err == nil {
			arches = append(arches, "arm64")
		}
	}
	dist := t.TempDir()
	cmd := exec.Command("sh", "release.sh", dist)
	cmd.Env = append(os.Environ(), "VERSION=v9.8.7-test", "ARCHES="+strings.Join(arches, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}

	want := map[string]string{"amd64": "x86-64", "arm64": "ARM aarch64"}
	for _, arch := range arches {
		bin := filepath.Join(dist, "mailstead-v9.8.7-test-linux-"+arch)
		out, err := exec.Command("file", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("file %s: %v\n%s", bin, err, out)
		}
		if !strings.Contains(string(out), "statically linked") || !strings.Contains(string(out), want[arch]) {
			t.Errorf("file says %s, want a statically linked %s executable", out, want[arch])
		}
	}

	// The host binary runs with nothing on PATH, so no go and no shared C library help it.
	bin := filepath.Join(dist, "mailstead-v9.8.7-test-linux-"+runtime.GOARCH)
	version := exec.Command(bin, "version")
	version.Env = []string{"PATH=" + t.TempDir(), "MAILSTEAD_DATA=" + t.TempDir()}
	out, err := version.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "mailstead v9.8.7-test schema ") {
		t.Fatalf("version: %v %q", err, out)
	}

	// install.sh --binary puts it in place on a machine without Go.
	e := newInstallEnv(t)
	basic := basicPath(t)
	for _, stand := range []string{"systemctl", "useradd", "chown"} {
		os.Symlink(filepath.Join(e.bin, stand), filepath.Join(basic, stand))
	}
	if out, err := e.run(basic, "--binary", bin); err != nil {
		t.Fatalf("install.sh --binary: %v\n%s", err, out)
	}
	installed := exec.Command(filepath.Join(e.root, "usr/local/bin/mailstead"), "version")
	installed.Env = []string{"PATH=" + basic}
	if out, err := installed.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "mailstead v9.8.7-test ") {
		t.Errorf("installed binary: %v %q", err, out)
	}
}
