package manage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"mailstead/store"
)

// SetupParams are the answers of the setup wizard and of `mailstead setup`.
type SetupParams struct {
	Hostname string // fully qualified: the MX target, EHLO name and certificate name
	Domain   string
	Admin    string // an address at Domain
	Password string
}

// Setup configures an empty data directory in one transaction: hostname, first domain with its
// DKIM keys, the admin account and postmaster@domain routed to it, and the spent setup token.
// On a directory that is already set up it changes nothing (store.ErrAlreadySetUp).
func (o *Ops) Setup(ctx context.Context, p SetupParams) (store.Account, error) {
	host, err := CheckHostname(p.Hostname)
	if err != nil {
		return store.Account{}, err
	}
	domain, err := store.CanonicalDomain(strings.TrimSpace(p.Domain))
	if err != nil {
		return store.Account{}, invalid("domain", "%q is not a domain name", p.Domain)
	}
	admin, err := store.CanonicalAddress(strings.TrimSpace(p.Admin))
	if err != nil || !strings.HasSuffix(admin, "@"+domain) {
		return store.Account{}, invalid("admin", "give an address at %s, such as you@%s", domain, domain)
	}
	if err := CheckPassword(p.Password); err != nil {
		return store.Account{}, err
	}
	kv, err := o.newKeys(domain)
	if err != nil {
		return store.Account{}, err
	}
	a, err := o.st.RunSetup(ctx, store.Setup{
		Domain:     store.NewDomain{Name: domain, KV: kv},
		Admin:      admin,
		Password:   p.Password,
		Postmaster: true,
		Settings:   map[string]string{"hostname": host, "setup.token": ""},
	})
	if err != nil {
		return a, fmt.Errorf("setup: %w", err)
	}
	o.log.Info("setup done", "hostname", host, "domain", domain, "admin", admin)
	o.settled(ctx)
	o.refreshCerts()
	return a, nil
}

// CheckHostname returns the canonical form of a mail hostname, which must be fully qualified.
func CheckHostname(h string) (string, error) {
	h = strings.TrimSpace(h)
	canon, err := store.CanonicalDomain(h)
	if err != nil || !strings.Contains(canon, ".") || !isHostname(canon) {
		return "", invalid("hostname", "%q is not a fully qualified host name such as mail.example.com", h)
	}
	return canon, nil
}

// isHostname checks the RFC 1123 §2.1 letter-digit-hyphen rule on an A-label name.
func isHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func (o *Ops) newKeys(domain string) (map[string][]byte, error) {
	if o.cfg.DKIM == nil {
		return nil, nil
	}
	kv, err := o.cfg.DKIM.NewKeys(domain)
	if err != nil {
		return nil, fmt.Errorf("dkim keys for %s: %w", domain, err)
	}
	return kv, nil
}

// AddDomain adds a domain with its DKIM keys and postmaster@ routed to postmaster (an account;
// "" means the first admin account), in one transaction, then refreshes certificates so the
// domain's autoconfig and MTA-STS names get theirs.
func (o *Ops) AddDomain(ctx context.Context, name, postmaster string) (store.Domain, error) {
	name, err := store.CanonicalDomain(strings.TrimSpace(name))
	if err != nil {
		return store.Domain{}, invalid("domain", "%q is not a domain name", name)
	}
	if postmaster == "" {
		postmaster, err = o.firstAdmin(ctx)
		if err != nil {
			return store.Domain{}, err
		}
	}
	kv, err := o.newKeys(name)
	if err != nil {
		return store.Domain{}, err
	}
	d, err := o.st.CreateDomain(ctx, store.NewDomain{Name: name, Postmaster: postmaster, KV: kv})
	if err != nil {
		return d, err
	}
	o.refreshCerts()
	return d, nil
}

// firstAdmin is the admin account that receives a new domain's postmaster mail when no one is
// named (the CLI); "" when there is none yet.
func (o *Ops) firstAdmin(ctx context.Context) (string, error) {
	accts, err := o.st.Accounts(ctx)
	if err != nil {
		return "", err
	}
	for _, a := range accts {
		if a.IsAdmin {
			return a.Address, nil
		}
	}
	return "", nil
}

// RemoveDomain removes a domain with what AddDomain made for it (postmaster alias, DKIM keys).
// A domain that still has accounts or other aliases is refused, so no mail is deleted by accident.
func (o *Ops) RemoveDomain(ctx context.Context, name string) error {
	canon, err := store.CanonicalDomain(strings.TrimSpace(name))
	if err != nil {
		return invalid("domain", "%q is not a domain name", name)
	}
	dr := store.DomainRemoval{Name: canon}
	if o.cfg.DKIM != nil {
		dr.KVPrefixes = []string{o.cfg.DKIM.KeyPrefix(canon)}
	}
	if err := o.st.DeleteDomain(ctx, dr); err != nil {
		return err
	}
	o.refreshCerts()
	return nil
}

// EnsureDKIM gives an existing domain keys when it has none (a domain made before keys were).
func (o *Ops) EnsureDKIM(ctx context.Context, domain string) error {
	canon, err := store.CanonicalDomain(domain)
	if err != nil {
		return invalid("domain", "%q is not a domain name", domain)
	}
	if ok, err := o.st.IsLocalDomain(ctx, canon); err != nil || !ok {
		return errors.Join(err, fmt.Errorf("domain %s: %w", canon, store.ErrNotOurDomain))
	}
	if o.cfg.DKIM == nil {
		return errors.New("no DKIM key maker")
	}
	have, err := o.st.KVKeys(ctx, o.cfg.DKIM.KeyPrefix(canon))
	if err != nil || len(have) > 0 {
		return err
	}
	kv, err := o.newKeys(canon)
	if err != nil {
		return err
	}
	for k, v := range kv {
		if err := o.st.PutKV(ctx, k, v); err != nil {
			return err
		}
	}
	return nil
}
