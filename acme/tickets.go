package acme

import (
	"crypto/rand"
	"crypto/tls"
	"sync"
	"time"
)

// Session ticket keys are shared by every config TLSConfig hands out, so that a STARTTLS peer
// resumes its session on any listener (RFC 8446 §2.2; Microsoft's MTAs rely on resumption). Each
// listener has a config of its own, so crypto/tls's automatic keys would differ per listener;
// these keys rotate as crypto/tls's do: a new one each day, the last week's still accepted.
const (
	ticketKeyLife  = 24 * time.Hour
	ticketKeysKept = 7
)

type ticketKeys struct {
	mu      sync.Mutex
	keys    [][32]byte // newest first: it encrypts, all decrypt
	rotated time.Time
	configs []*tls.Config // one per listener: they are made at start and live as long
}

// share gives c the current keys and keeps it to give it the next ones.
func (k *ticketKeys) share(c *tls.Config, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rotateLocked(now)
	c.SetSessionTicketKeys(k.keys)
	k.configs = append(k.configs, c)
}

// rotate adds a new key once the newest is a day old; handshakes call it, so keys rotate without
// a goroutine of their own.
func (k *ticketKeys) rotate(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.rotateLocked(now) {
		for _, c := range k.configs {
			c.SetSessionTicketKeys(k.keys)
		}
	}
}

func (k *ticketKeys) rotateLocked(now time.Time) bool {
	if len(k.keys) > 0 && now.Sub(k.rotated) < ticketKeyLife {
		return false
	}
	var key [32]byte
	rand.Read(key[:])
	k.keys = append([][32]byte{key}, k.keys...)
	if len(k.keys) > ticketKeysKept {
		k.keys = k.keys[:ticketKeysKept]
	}
	k.rotated = now
	return true
}
