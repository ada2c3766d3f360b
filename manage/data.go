package manage

import (
	"context"
	"io"

	"mailstead/delivery"
	"mailstead/store"
)

// Import stores one batch of messages of `mailstead import` into an account (inside the running
// server when there is one, so IMAP sessions see the mail at once), through delivery's import
// entry point like every other way mail enters the store.
func (o *Ops) Import(ctx context.Context, address string, msgs []store.ImportMessage) (store.ImportResult, error) {
	return delivery.Import(ctx, o.st, address, msgs)
}

// WriteBackup streams a consistent backup as a .tar.gz (the admin page's download). The CLI's
// `mailstead backup DEST` copies the data directory in its own process instead (server/ops.go),
// where the CLI's user may write and the sandboxed service may not.
func (o *Ops) WriteBackup(ctx context.Context, w io.Writer) error {
	return o.st.WriteBackup(ctx, w)
}
