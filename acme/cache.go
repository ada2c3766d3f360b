package acme

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/acme/autocert"
)

// kvPrefix starts every key the autocert cache writes to the store; the
// directory's host follows, e.g. "acme/acme-v02.api.letsencrypt.org/".
const kvPrefix = "acme/"

// kvCache is autocert's Cache on the store's kv table, so a backup carries
// the ACME account key and the certificates. Challenge tokens are short-lived
// (minutes, deleted by autocert when the authorization is done) and stay in
// memory, shared by every autocert.Manager of this package.
type kvCache struct {
	kv     KV
	prefix string                        // kvPrefix + the directory's host + "/"
	onPut  func(key string, data []byte) // called after a certificate is stored

	mu     sync.Mutex
	tokens map[string][]byte // guarded by mu
}

// isToken reports whether key names a challenge response: a TLS-ALPN-01
// certificate ("name+token") or an HTTP-01 body ("token+http-01").
func isToken(key string) bool {
	return strings.HasSuffix(key, "+token") || strings.HasSuffix(key, "+http-01")
}

func (c *kvCache) Get(ctx context.Context, key string) ([]byte, error) {
	if isToken(key) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if v, ok := c.tokens[key]; ok {
			return v, nil
		}
		return nil, autocert.ErrCacheMiss
	}
	data, err := c.kv.GetKV(ctx, c.prefix+key)
	if errNotExist(err) {
		return nil, autocert.ErrCacheMiss
	}
	if err != nil {
		return nil, fmt.Errorf("acme cache: get %s: %w", key, err)
	}
	return data, nil
}

func (c *kvCache) Put(ctx context.Context, key string, data []byte) error {
	if isToken(key) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.tokens[key] = append([]byte(nil), data...)
		return nil
	}
	if err := c.kv.PutKV(ctx, c.prefix+key, data); err != nil {
		return fmt.Errorf("acme cache: put %s: %w", key, err)
	}
	if _, _, ok := cacheKeyName(key); ok && c.onPut != nil {
		c.onPut(key, data)
	}
	return nil
}

func (c *kvCache) Delete(ctx context.Context, key string) error {
	if isToken(key) {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.tokens, key)
		return nil
	}
	if err := c.kv.DeleteKV(ctx, c.prefix+key); err != nil && !errNotExist(err) {
		return fmt.Errorf("acme cache: delete %s: %w", key, err)
	}
	return nil
}

// orderCache is the cache seen by the autocert.Manager that runs one order.
// A stored certificate that is due for renewal reads as a miss, so autocert
// orders a new one instead of returning it.
type orderCache struct {
	*kvCache
	due func(key string, data []byte) bool
}

func (c orderCache) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := c.kvCache.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, _, ok := cacheKeyName(key); ok && c.due(key, data) {
		return nil, autocert.ErrCacheMiss
	}
	return data, nil
}
