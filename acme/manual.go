package acme

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// manualStatInterval bounds how often handshakes stat the manual files.
const manualStatInterval = time.Second

// manualCert serves a certificate and key from files managed outside
// mailstead (a proxy, certbot). The files are re-read when their size or
// modification time changes; a broken new pair is reported and the previous
// one kept.
type manualCert struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]fileStamp
	lastStat  time.Time
	lastErr   error
	lastErrAt time.Time
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

func statStamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}, nil
}

// get returns the current certificate, reloading the files if they changed.
// The certificate is nil until the files have loaded once.
func (mc *manualCert) get() (*tls.Certificate, error) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	now := mc.now()
	if mc.cert != nil && now.Sub(mc.lastStat) < manualStatInterval && !now.Before(mc.lastStat) {
		return mc.cert, nil
	}
	mc.lastStat = now
	var stamp [2]fileStamp
	var err error
	for i, p := range []string{mc.certFile, mc.keyFile} {
		if stamp[i], err = statStamp(p); err != nil {
			return mc.cert, mc.fail(fmt.Errorf("acme: manual certificate: %w", err))
		}
	}
	if mc.cert != nil && stamp == mc.stamp {
		return mc.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(mc.certFile, mc.keyFile)
	if err != nil {
		// Often the certificate was rewritten and the key not yet: keep the
		// old pair and try again on the next change.
		mc.stamp = stamp
		return mc.cert, mc.fail(fmt.Errorf("acme: manual certificate %s / %s: %w", mc.certFile, mc.keyFile, err))
	}
	mc.cert, mc.stamp, mc.lastErr = &cert, stamp, nil
	mc.log.Info("manual certificate loaded", "file", mc.certFile,
		"names", cert.Leaf.DNSNames, "issuer", cert.Leaf.Issuer.String(), "not_after", cert.Leaf.NotAfter)
	return mc.cert, nil
}

// fail records err; called with mu held.
func (mc *manualCert) fail(err error) error {
	if mc.lastErr == nil || mc.lastErr.Error() != err.Error() {
		mc.log.Error("manual certificate", "err", err)
	}
	mc.lastErr, mc.lastErrAt = err, mc.now()
	return err
}

// state returns the loaded certificate, and the last load error with when it happened.
func (mc *manualCert) state() (*tls.Certificate, time.Time, error) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.cert, mc.lastErrAt, mc.lastErr
}
