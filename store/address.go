package store

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// ErrBadAddress is returned for an address that is not a plain local@domain mailbox.
var ErrBadAddress = errors.New("invalid address")

// CanonicalDomain returns the lower-case A-label form of a domain name (RFC 5890), which is how
// domains are stored and compared. A trailing dot, an address literal or an empty label is refused:
// each is a way to make one domain look like another.
func CanonicalDomain(d string) (string, error) {
	if d == "" || strings.HasSuffix(d, ".") || strings.HasPrefix(d, "[") {
		return "", fmt.Errorf("domain %q: %w", d, ErrBadAddress)
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("domain %q: %w", d, ErrBadAddress)
	}
	a = strings.ToLower(a)
	for _, label := range strings.Split(a, ".") {
		if label == "" {
			return "", fmt.Errorf("domain %q: %w", d, ErrBadAddress)
		}
	}
	return a, nil
}

// SplitAddress splits and canonicalises local@domain: the local part is lower-cased (mailstead
// treats local parts case-insensitively) and the domain is put in A-label form. Quoted local parts,
// source routes and anything with a second '@' are refused, since none has a use on a personal
// server and each has served to trick relays.
func SplitAddress(addr string) (local, domain string, err error) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", fmt.Errorf("address %q: %w", addr, ErrBadAddress)
	}
	local, domain = addr[:i], addr[i+1:]
	if strings.ContainsAny(local, "\"@:,<>[]\\ \t\r\n") || strings.HasPrefix(local, ".") ||
		strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", "", fmt.Errorf("address %q: %w", addr, ErrBadAddress)
	}
	domain, err = CanonicalDomain(domain)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", addr, ErrBadAddress)
	}
	return strings.ToLower(local), domain, nil
}

// CanonicalAddress returns local@domain in the form accounts and aliases are stored.
func CanonicalAddress(addr string) (string, error) {
	local, domain, err := SplitAddress(addr)
	if err != nil {
		return "", err
	}
	return local + "@" + domain, nil
}
