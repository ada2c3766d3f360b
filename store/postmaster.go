package store

import (
	"context"
	"fmt"
)

// Postmasters returns the accounts that receive mail for postmaster@domain, or for the bare
// "<Postmaster>" of RFC 5321 §4.1.1.3 when domain is "". RFC 5321 §4.5.1 requires every domain
// to accept postmaster mail, so this never depends on an alias existing: the domain's admins
// always receive it, together with whatever postmaster@domain names explicitly (an account or an
// alias, not the catch-all). With no admin in the domain, the server's admins take it; with no
// admin at all, the domain's (else the server's) first account, the one setup created.
func (s *Store) Postmasters(ctx context.Context, domain string) ([]int64, error) {
	steps := []struct {
		what  string
		query string
	}{
		{"domain admins", `SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id
			WHERE a.is_admin AND d.name = ?1
			UNION SELECT id FROM accounts WHERE address = 'postmaster@' || ?1
			UNION SELECT account_id FROM aliases WHERE address = 'postmaster@' || ?1 ORDER BY 1`},
		{"server admins", `SELECT id FROM accounts WHERE is_admin AND ?1 = ?1 ORDER BY id`},
		{"domain's first account", `SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id
			WHERE d.name = ?1 ORDER BY a.id LIMIT 1`},
		{"first account", `SELECT id FROM accounts WHERE ?1 = ?1 ORDER BY id LIMIT 1`},
	}
	for _, st := range steps { // every query takes the domain as ?1, so each step reads alike

		ids, err := column[int64](s.db.QueryContext(ctx, st.query, domain))
		if err != nil {
			return nil, fmt.Errorf("postmaster of %q: %s: %w", domain, st.what, err)
		}
		if len(ids) > 0 {
			return ids, nil
		}
	}
	return nil, fmt.Errorf("postmaster of %q: %w", domain, ErrUnknownUser)
}
