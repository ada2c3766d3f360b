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

// WriteBackup streams a consistent backup as a .tar.gz (the admin page's download). The CLI's
// `mailstead backup DEST` copies the data directory in its own process instead (server/ops.go),
// where the CLI's user may write and the sandboxed service may not.
func (o *Ops) WriteBackup(ctx context.Context, w io.Writer) error {
	return o.st.WriteBackup(ctx, w)
}
