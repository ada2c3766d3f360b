package mailtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the mailstead command once per test binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailstead-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mailstead")
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("mailtest: %v", buildErr)
	}
	return binPath
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test directory")
		}
		dir = parent
	}
}

// Process is mailstead running as a child process, for tests that kill it.
type Process struct {
	Opts   Options
	Cmd    *exec.Cmd
	Stdout bytes.Buffer
	Stderr bytes.Buffer
	t      testing.TB
	done   chan struct{}
	err    error
}

// StartProcess runs `mailstead serve` on a data directory prepared with opts (see Prepare) and
// waits until its SMTP port accepts connections. The process is killed when the test ends.
func StartProcess(t testing.TB, opts Options, extraArgs ...string) *Process {
	t.Helper()
	opts.fill(t)
	args := []string{"serve", "--data", opts.Dir, "--bind", opts.IP, "--port-offset", strconv.Itoa(opts.PortOffset)}
	if opts.DNS != "" {
		args = append(args, "--dns", opts.DNS)
	}
	p := &Process{Opts: opts, t: t, done: make(chan struct{})}
	bin := opts.Binary
	if bin == "" {
		bin = Binary(t)
	}
	p.Cmd = exec.Command(bin, append(args, extraArgs...)...)
	p.Cmd.Stdout = &p.Stdout
	p.Cmd.Stderr = &p.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("mailtest: start mailstead: %v", err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("mailstead stderr:\n%s", p.Stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		// 443 is the last listener the server opens: once it answers, every port listens.
		c, err := net.DialTimeout("tcp", opts.Addr(443), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("mailtest: mailstead exited early: %v\n%s", p.err, p.Stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailtest: mailstead did not listen on %s\n%s", opts.Addr(443), p.Stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to die.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Terminate sends SIGTERM and waits up to timeout for a clean exit, returning its error.
func (p *Process) Terminate(timeout time.Duration) error {
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("mailstead did not exit within %v of SIGTERM", timeout)
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// CPUTime returns the user+system CPU time the process has used so far (Linux /proc).
func (p *Process) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name in parentheses; utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	fields := bytes.Fields(b[i+2:])
	utime, _ := strconv.ParseInt(string(fields[11]), 10, 64)
	stime, _ := strconv.ParseInt(string(fields[12]), 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// PeakRSS returns the most resident memory the process has used (VmHWM in /proc).
func (p *Process) PeakRSS() (int64, error) { return p.procKB("status", "VmHWM:") }

// PSS returns the process's proportional set size (Pss in /proc/PID/smaps_rollup): its resident
// memory with shared pages divided among the processes sharing them, the figure to sum when
// comparing with servers made of several processes.
func (p *Process) PSS() (int64, error) { return p.procKB("smaps_rollup", "Pss:") }

// procKB reads the "FIELD: N kB" line of /proc/PID/FILE, in bytes.
func (p *Process) procKB(file, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.Cmd.Process.Pid, file))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(field)); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/%s", field, p.Cmd.Process.Pid, file)
}
