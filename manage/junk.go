package manage

import (
	"context"
	"fmt"
)

// JunkFilter is the running junk filter, told when an account's filter settings change so it
// uses them for the next message (and trains from existing mail when switched on again).
type JunkFilter interface {
	SettingsChanged(accountID int64)
}

// SetJunkFilter switches the account's junk filter on or off and sets the score from which mail
// goes to Junk; 0 means the filter's default. Per-account data, so it is not a server setting.
func (o *Ops) SetJunkFilter(ctx context.Context, accountID int64, enabled bool, threshold float64) error {
	if threshold != 0 && (threshold < 0.5 || threshold > 1) {
		return invalid("threshold", "must be between 0.5 and 1 (or 0 for the default), not %v", threshold)
	}
	if err := o.st.SetJunkSettings(ctx, accountID, enabled, threshold); err != nil {
		return fmt.Errorf("junk filter of account %d: %w", accountID, err)
	}
	if o.cfg.Junk != nil {
		o.cfg.Junk.SettingsChanged(accountID)
	}
	return nil
}
