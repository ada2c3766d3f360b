package acme

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"mailstead/acme/acmetest"
)

// startPebble starts a Pebble whose DNS answers A 127.0.0.1 for names and
// which validates HTTP-01 on 127.0.0.1:httpPort and TLS-ALPN-01 on
// 127.0.0.1:tlsPort.
func startPebble(t *testing.T, httpPort, tlsPort int, names ...string) *acmetest.CA {
	t.Helper()
	return acmetest.Start(t, acmetest.Options{HTTPPort: httpPort, TLSPort: tlsPort, Names: names})
}

// pebbleConfig returns a Config that orders from ca.
func pebbleConfig(ca *acmetest.CA, httpsPort int) Config {
	return Config{
		Hostname:   testHost,
		Directory:  ca.DirectoryURL,
		Email:      "postmaster@example.test",
		HTTPClient: ca.Client,
		HTTPSPort:  httpsPort,
	}
}

func freePort(t *testing.T) int { return acmetest.FreePort(t) }

func waitFor(t *testing.T, what string, ready func() error) { acmetest.WaitFor(t, what, ready) }

// runManager runs m.Run until the test ends.
func runManager(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// waitIssued waits until name holds its certificates from the CA: ECDSA,
// and RSA too for the hostname.
func waitIssued(t *testing.T, m *Manager, name string) {
	t.Helper()
	waitFor(t, "certificates for "+name, func() error {
		pair := m.setup().live.Load().byName[name]
		if pair.ecdsa == nil || (pair.rsa == nil && name == m.setup().hostname) {
			for _, h := range m.Status().Hosts {
				if h.Name == name {
					return fmt.Errorf("%s: %s %s %s", name, h.State, h.Detail, h.LastError)
				}
			}
			return fmt.Errorf("%s: not listed", name)
		}
		return nil
	})
}

func portOf(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }
