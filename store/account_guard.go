package store

import (
	"context"
	"errors"
	"fmt"
)

// Guard rails on accounts. Removing or demoting the only admin would leave a server nobody can
// manage from the web, so the store refuses it inside the write transaction (two demotions at
// once cannot both pass). Removing an account that holds mail takes the mail with it, so the
// caller says how many messages it agreed to lose and a removal that would take more is refused.

// ErrLastAdmin refuses removing or demoting the only admin account.
var ErrLastAdmin = errors.New("is the only admin: make another account admin first (mailstead account admin ADDRESS on)")

// HoldsMailError refuses removing an account that holds more messages than the caller agreed to.
type HoldsMailError struct {
	Address  string
	Messages int64
	Aliases  []string // aliases that route to the account
}

func (e *HoldsMailError) Error() string {
	s := fmt.Sprintf("account %s holds %d message(s), which would be deleted with it", e.Address, e.Messages)
	if len(e.Aliases) > 0 {
		s += fmt.Sprintf(", and routes the aliases %v", e.Aliases)
	}
	return s
}

// AccountHoldings is what goes with an account when it is removed.
type AccountHoldings struct {
	Messages int64
	// Aliases route to the account: each loses it as a target, and one with no other target
	// goes entirely (the postmaster and the catch-all of a domain are often such aliases).
	Aliases []string
}

// Holdings reports what removing the account at address would delete.
func (s *Store) Holdings(ctx context.Context, address string) (AccountHoldings, error) {
	a, err := s.AccountByAddress(ctx, address)
	if err != nil {
		return AccountHoldings{}, err
	}
	var h AccountHoldings
	if err := s.db.QueryRowContext(ctx, holdingsQuery, a.ID).Scan(&h.Messages); err != nil {
		return h, fmt.Errorf("account %s: %w", address, err)
	}
	h.Aliases, err = column[string](s.db.QueryContext(ctx, "SELECT address FROM aliases WHERE account_id = ? ORDER BY address", a.ID))
	if err != nil {
		return h, fmt.Errorf("account %s: %w", address, err)
	}
	return h, nil
}

const holdingsQuery = `SELECT COUNT(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = ?`

// keepAnAdmin refuses a change that leaves no admin besides account id.
func (t *writeTx) keepAnAdmin(id int64, address string) error {
	var isAdmin bool
	var others int
	if err := t.QueryRow("SELECT is_admin FROM accounts WHERE id = ?", id).Scan(&isAdmin); err != nil {
		return fmt.Errorf("account %s: %w", address, notFound(err))
	}
	if !isAdmin {
		return nil
	}
	if err := t.QueryRow("SELECT COUNT(*) FROM accounts WHERE is_admin AND id != ?", id).Scan(&others); err != nil {
		return err
	}
	if others == 0 {
		return fmt.Errorf("account %s %w", address, ErrLastAdmin)
	}
	return nil
}
