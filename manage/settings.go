package manage

import (
	"context"
	"fmt"
)

// SetSetting validates a setting and stores it ("" restores the default). The store announces
// the change after its commit, and the service that owns the setting applies it.
func (o *Ops) SetSetting(ctx context.Context, key, value string) error {
	if o.cfg.Settings != nil {
		if err := o.cfg.Settings.Validate(key, value); err != nil {
			return err
		}
	}
	if err := o.st.SetSetting(ctx, key, value); err != nil {
		return fmt.Errorf("settings set %s: %w", key, err)
	}
	return nil
}
