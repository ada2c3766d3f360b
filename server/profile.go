package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
)

// profiler writes pprof profiles of the running server on request through the control socket
// (`mailstead profile …`), so a slow path can be measured in the very process, binary and
// settings a user runs; the benchmarks use it the same way. The socket is the data directory
// owner's only, and nothing is sampled until asked (the runtime's default allocation sampling
// aside).
type profiler struct {
	mu  sync.Mutex
	cpu *os.File // the CPU profile being written, between start and stop
}

// ProfileCommand is the control-socket command that profiles the running server.
const ProfileCommand = "profile"

const profileUsage = "profile cpu-start FILE | cpu-stop | allocs FILE | heap FILE"

// run executes one profile command: FILE must be an absolute path, written by the server.
func (p *profiler) run(args []string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(args) == 1 && args[0] == "cpu-stop" {
		if p.cpu == nil {
			return "", errors.New("no CPU profile is running")
		}
		pprof.StopCPUProfile()
		err := p.cpu.Close()
		name := p.cpu.Name()
		p.cpu = nil
		if err != nil {
			return "", fmt.Errorf("cpu profile: %w", err)
		}
		return "wrote " + name + "\n", nil
	}
	if len(args) != 2 || !filepath.IsAbs(args[1]) {
		return "", usage(profileUsage)
	}
	file := args[1]
	switch args[0] {
	case "cpu-start":
		if p.cpu != nil {
			return "", errors.New("a CPU profile is already running")
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return "", fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return "", fmt.Errorf("cpu profile: %w", err)
		}
		p.cpu = f
		return "writing " + file + " until cpu-stop\n", nil
	case "allocs", "heap":
		if args[0] == "heap" {
			runtime.GC() // the live heap as of now, not as of the last cycle
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return "", fmt.Errorf("%s profile: %w", args[0], err)
		}
		err = pprof.Lookup(args[0]).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("%s profile: %w", args[0], err)
		}
		return "wrote " + file + "\n", nil
	}
	return "", usage(profileUsage)
}
