package server_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"mailstead/mailtest"
	"mailstead/server"
)

// TestProfileCommand takes each profile of a running server through its control socket, as
// `mailstead profile` and the benchmarks do: every file must be a gzipped pprof profile, and a
// command line that does not fit is refused as a usage error.
func TestProfileCommand(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	dir := t.TempDir()
	call := func(args ...string) error {
		_, err := server.Call(srv.Opts.Dir, server.Request{Command: server.ProfileCommand, Args: args})
		return err
	}
	steps := [][]string{
		{"cpu-start", filepath.Join(dir, "cpu.pprof")},
		{"cpu-stop"},
		{"allocs", filepath.Join(dir, "allocs.pprof")},
		{"heap", filepath.Join(dir, "heap.pprof")},
	}
	for _, args := range steps {
		if err := call(args...); err != nil {
			t.Fatalf("profile %v: %v", args, err)
		}
	}
	for _, name := range []string{"cpu.pprof", "allocs.pprof", "heap.pprof"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: %v, starts %x; want a gzipped profile", name, err, b[:min(len(b), 2)])
		}
	}
	for _, args := range [][]string{{"cpu-start", "relative.pprof"}, {"heap"}, {"goroutines", "/tmp/x"}} {
		if err := call(args...); !errors.Is(err, server.ErrUsage) {
			t.Errorf("profile %v: err = %v, want a usage error", args, err)
		}
	}
	if err := call("cpu-stop"); err == nil {
		t.Error("cpu-stop with no CPU profile running: no error")
	}
}
