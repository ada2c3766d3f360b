package server

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"mailstead/store"
)

// TestRestoreHoldsTheDataDirectory: while a restore holds the data directory, a server does not
// start on it and a second restore is refused; afterwards the server starts.
func TestRestoreHoldsTheDataDirectory(t *testing.T) {
	dir := t.TempDir()
	release, err := holdDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holdDataDir(dir); err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("second hold: %v", err)
	}
	if _, err := Call(dir, Request{Command: "stats"}); err == nil || !strings.Contains(err.Error(), "restore is in progress") {
		t.Fatalf("a command during the restore: %v", err)
	}
	srv, err := New(Options{DataDir: dir, Bind: "127.0.0.1", EphemeralPorts: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "another mailstead") {
		t.Fatalf("server start during a restore: %v", err)
	}
	release()
	srv, err = New(Options{DataDir: dir, Bind: "127.0.0.1", EphemeralPorts: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("server start after the restore: %v", err)
	}
	srv.Shutdown(context.Background())
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 100)
	p.update(50, store.ImportResult{Added: 5})
	p.finish()
	if buf.Len() != 0 {
		t.Fatalf("progress written to a pipe: %q", buf.String())
	}
	p.tty = true
	p.update(50, store.ImportResult{Added: 5, Skipped: 2})
	if got := buf.String(); got != "\rimporting: 5 added, 2 already there (50%)   " {
		t.Fatalf("progress line %q", got)
	}
}
