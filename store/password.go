package store

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argon2id parameters per RFC 9106 §4 second recommended option, scaled to a small VPS:
// 19 MiB, 2 passes, 1 lane (the OWASP minimum), about 20 ms a verification on one core.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an encoded argon2id hash of pw.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime,
		argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// checkPassword verifies pw against an argon2id or bcrypt hash.
func checkPassword(hash, pw string) bool {
	if strings.HasPrefix(hash, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// ErrAuthFailed is returned for an unknown user or a wrong password; callers must not tell which.
var ErrAuthFailed = errors.New("authentication failed")

// authCacheTTL is how long a successful verification is remembered. Phones reconnect often, and
// argon2id is deliberately slow; a short memory makes the common case cheap.
const authCacheTTL = 10 * time.Minute

// authCache remembers successful verifications keyed by a hash of (stored hash, password), never
// the password itself. A password change alters the stored hash and so misses the cache; failures
// are never remembered.
type authCache struct {
	mu      sync.Mutex
	entries map[[32]byte]time.Time
}

func authKey(hash, pw string) [32]byte {
	return sha256.Sum256([]byte(hash + "\x00" + pw))
}

func (c *authCache) hit(hash, pw string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[authKey(hash, pw)]
	return ok && time.Now().Before(exp)
}

func (c *authCache) remember(hash, pw string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) > 10000 {
		c.entries = map[[32]byte]time.Time{}
	}
	c.entries[authKey(hash, pw)] = time.Now().Add(authCacheTTL)
}
