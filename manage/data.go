package manage

import (
	"context"
	"fmt"
	"io"

	"mailstead/store"
)

// Import stores one batch of messages of `mailstead import` into an account (inside the running
// server when there is one, so IMAP sessions see the mail at once).
func (o *Ops) Import(ctx context.Context, address string, msgs []store.ImportMessage) (store.ImportResult, error) {
	acct, err := o.st.AccountByAddress(ctx, address)
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("import: %w", err) // the store's error names the account
	}
	return o.st.Import(ctx, acct.ID, msgs)
}

// Backup writes a consistent copy of the database into the new or empty directory dest.
func (o *Ops) Backup(ctx context.Context, dest string) (int64, error) {
	return o.st.Backup(ctx, dest)
}

// WriteBackup streams a consistent backup as a .tar.gz (the admin page's download).
func (o *Ops) WriteBackup(ctx context.Context, w io.Writer) error {
	return o.st.WriteBackup(ctx, w)
}
