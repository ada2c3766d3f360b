package delivery

import (
	"context"
	"fmt"

	"mailstead/store"
)

// ImportStore is what Import needs of the store.
type ImportStore interface {
	AccountByAddress(ctx context.Context, address string) (store.Account, error)
	Import(ctx context.Context, accountID int64, msgs []store.ImportMessage) (store.ImportResult, error)
}

// Import is the entry point for mail moved from another server (`mailstead import`): it files
// msgs into the named mailboxes of the account at address, with their flags and dates, in one
// store write, skipping copies already imported into the same mailbox (store.Import's
// fingerprints), so a repeated or resumed import adds nothing twice.
//
// Unlike Deliver it adds no Received: line, Return-Path or Delivered-To, and expands no alias:
// the messages were delivered once already, by the old server, and carry its trace; changing
// their bytes would also defeat the fingerprints. The address must be an account's own (an
// alias or catch-all could send a mailbox archive to someone else without a word).
func Import(ctx context.Context, st ImportStore, address string, msgs []store.ImportMessage) (store.ImportResult, error) {
	acct, err := st.AccountByAddress(ctx, address)
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("import: %w", err) // the store's error names the account
	}
	return st.Import(ctx, acct.ID, msgs)
}
