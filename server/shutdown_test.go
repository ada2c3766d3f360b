package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"testing"
)

// These tests pin the two ways a start racing a stop kept Shutdown waiting for ever (seen once in
// a full test run: a server's 465 accept loop began after its stop had run). Each orders the
// events with channels, so it fails the same way every run.

func newUnstarted(t *testing.T) *Server {
	t.Helper()
	srv, err := New(Options{DataDir: t.TempDir(), Bind: "127.0.0.1", EphemeralPorts: true})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// listenLoopback listens on a random 127/8 address, so parallel test binaries do not collide.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	l, err := net.Listen("tcp", fmt.Sprintf("127.%d.%d.%d:0", b[0], b[1], 1+b[2]%254))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A listener handed to serve once Shutdown has taken the stoppers is stopped and closed at once,
// and its accept loop is not started: nothing else would ever stop it.
func TestServeAfterShutdownStopsAtOnce(t *testing.T) {
	srv := newUnstarted(t)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := listenLoopback(t)
	defer l.Close()
	stopped, served := false, false
	srv.serve("late", l, func(net.Listener) error { served = true; return nil },
		func(context.Context) error { stopped = true; return nil })
	srv.wg.Wait() // would run a started accept loop to its end
	if served {
		t.Error("an accept loop was started after Shutdown")
	}
	if !stopped {
		t.Fatal("stop of a listener served after Shutdown was not run")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) { // returns at once when closed
		t.Errorf("listener served after Shutdown: Accept = %v, want it closed", err)
	}
}

// Background work handed over once Shutdown has begun is not started.
func TestGoBackgroundAfterShutdownStartsNothing(t *testing.T) {
	srv := newUnstarted(t)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ran := false
	srv.goBackground(func() { ran = true })
	srv.wg.Wait()
	if ran {
		t.Error("background work started after Shutdown")
	}
}

// An accept loop that only starts after its stop ran (a goroutine run late on a loaded machine)
// finds its listener closed, so Shutdown returns, even when the service's own stop (like
// go-smtp's) closes only the listeners whose loop had started.
func TestServeLoopStartingAfterStopEnds(t *testing.T) {
	srv := newUnstarted(t)
	l := listenLoopback(t)
	release, stopRan, acceptErr := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	srv.serve("slow", l, func(l net.Listener) error {
		<-release
		_, err := l.Accept()
		acceptErr <- err
		return err
	}, func(context.Context) error { close(stopRan); return nil }) // closes nothing, as go-smtp's before its loop runs
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	<-stopRan
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept loop started after stop: Accept = %v, want the listener closed", err)
	}
}
