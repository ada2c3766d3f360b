package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrOverQuota: adding the mail would take the account above its quota (RFC 9208 §5.1
// STORAGE, applied to the whole account). Callers answer it with their protocol's code: SMTP
// 552 5.2.2 (RFC 3463 "mailbox full"), IMAP NO [OVERQUOTA].
var ErrOverQuota = errors.New("over quota")

// QuotaError says by how much; errors.Is(err, ErrOverQuota) holds.
type QuotaError struct {
	AccountID           int64
	Used, Adding, Limit int64 // bytes
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("account %d: %d bytes used, %d more would exceed the quota of %d: %s",
		e.AccountID, e.Used, e.Adding, e.Limit, ErrOverQuota)
}

func (e *QuotaError) Unwrap() error { return ErrOverQuota }

// QuotaUsage is an account's storage use against its limit (0: unlimited).
type QuotaUsage struct {
	Used, Limit int64 // bytes
}

// Quota reports an account's storage use and limit.
func (s *Store) Quota(ctx context.Context, accountID int64) (QuotaUsage, error) {
	var q QuotaUsage
	err := s.db.QueryRowContext(ctx, "SELECT quota FROM accounts WHERE id = ?", accountID).Scan(&q.Limit)
	if errors.Is(err, sql.ErrNoRows) {
		return q, fmt.Errorf("account %d: %w", accountID, ErrNotFound)
	}
	if err != nil {
		return q, fmt.Errorf("quota of account %d: %w", accountID, err)
	}
	if err := s.db.QueryRowContext(ctx, usageQuery, accountID).Scan(&q.Used); err != nil {
		return q, fmt.Errorf("usage of account %d: %w", accountID, err)
	}
	return q, nil
}

// usageQuery sums the sizes of every message of an account, each copy counted (a copy in
// another mailbox is what the user sees twice).
const usageQuery = `SELECT coalesce(sum(m.size), 0) FROM mailboxes b JOIN messages m ON m.mailbox_id = b.id
	WHERE b.account_id = ?`

// checkQuota is the one quota check: every write that adds mail to an account (delivery,
// submission copies, APPEND, COPY, import) calls it in its transaction before adding, so the
// limit holds however the mail arrives. Accounts without a quota cost one primary-key read.
func (t *writeTx) checkQuota(accountID, adding int64) error {
	var limit int64
	if err := t.QueryRow("SELECT quota FROM accounts WHERE id = ?", accountID).Scan(&limit); err != nil {
		return fmt.Errorf("quota of account %d: %w", accountID, notFound(err))
	}
	if limit <= 0 || adding <= 0 {
		return nil
	}
	var used int64
	if err := t.QueryRow(usageQuery, accountID).Scan(&used); err != nil {
		return fmt.Errorf("usage of account %d: %w", accountID, err)
	}
	if used+adding > limit {
		return &QuotaError{AccountID: accountID, Used: used, Adding: adding, Limit: limit}
	}
	return nil
}
