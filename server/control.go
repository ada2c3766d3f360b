package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ControlSocket is the unix socket in the data directory through which management commands reach
// a running server, so that its sessions see their effect (DESIGN.md: management while running).
const ControlSocket = "mailstead.sock"

func (s *Server) startControl() error {
	path := filepath.Join(s.opts.DataDir, ControlSocket)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another mailstead is running on %s", s.opts.DataDir)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(path, 0o600)
	s.control = l
	s.goBackground(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.handleControl(c)
		}
	})
	return nil
}

func (s *Server) handleControl(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	var req Request
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	var out string
	var err error
	switch {
	case req.Command == "certs" && len(req.Args) == 0:
		out = s.certs.Status().String() // the live state, including errors of the last order
	case req.Command == ProfileCommand:
		out, err = s.profiler.run(req.Args) // of this process: only a running server has one
	default:
		out, err = execute(context.Background(), s.ops, s.store, req)
	}
	resp := Response{Output: out}
	if err != nil {
		resp.Error, resp.Usage = err.Error(), IsUsage(err)
	}
	json.NewEncoder(c).Encode(resp)
}

// remoteError is an error the running server answered with; usage keeps the exit status 2 of a
// refused command line or value.
type remoteError struct {
	msg   string
	usage bool
}

func (e remoteError) Error() string { return e.msg }

func (e remoteError) Is(target error) bool { return e.usage && target == ErrUsage }

// ErrNotRunning means no server answers on the data directory's control socket.
var ErrNotRunning = errors.New("server not running")

// Call sends a management command to the server running on dataDir.
func Call(dataDir string, req Request) (string, error) {
	c, err := net.DialTimeout("unix", filepath.Join(dataDir, ControlSocket), 2*time.Second)
	if err != nil {
		return "", ErrNotRunning
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return "", fmt.Errorf("control socket: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return "", fmt.Errorf("control socket: %w", err)
	}
	if resp.Error != "" {
		return resp.Output, remoteError{msg: resp.Error, usage: resp.Usage}
	}
	return resp.Output, nil
}

// Manage runs a management command in the running server when there is one, else directly on
// the data directory.
func Manage(ctx context.Context, dataDir string, req Request) (string, error) {
	out, err := Call(dataDir, req)
	if !errors.Is(err, ErrNotRunning) {
		return out, err
	}
	st, err := OpenStore(dataDir, nil)
	if err != nil {
		return "", err
	}
	defer st.Close()
	return Execute(ctx, st, req)
}
