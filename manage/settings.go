package manage

import (
	"context"
	"fmt"

	"mailstead/settings"
)

// settled waits until the running server applied the settings just stored.
func (o *Ops) settled(ctx context.Context) {
	if o.cfg.Applied != nil {
		o.cfg.Applied(ctx)
	}
}

// Settings are the definitions of every setting.
func (o *Ops) Settings() *settings.Registry { return o.cfg.Settings }

// SetSetting validates a value through its definition and stores it ("" restores the default);
// nothing is stored when it is refused. The store announces the change after its commit and
// the owner applies it at once, unless the returned definition says Restart: then it applies at
// the next start, and the caller says so.
func (o *Ops) SetSetting(ctx context.Context, key, value string) (settings.Def, error) {
	d, err := o.cfg.Settings.Lookup(key)
	if err != nil {
		return d, err
	}
	if d.Hidden {
		return d, invalid(key, "set by mailstead itself, not by hand")
	}
	if err := d.Validate(value); err != nil {
		return d, err
	}
	if err := o.st.SetSetting(ctx, key, value); err != nil {
		return d, fmt.Errorf("settings set %s: %w", key, err)
	}
	o.settled(ctx)
	return d, nil
}

// Setting is one setting as listed: its definition and its value (masked when secret).
type Setting struct {
	settings.Def
	Value string // the value in effect (the default when unset); "(set)" or "" for a secret
	IsSet bool   // a value is stored (not the default)
}

// Masked is how a stored secret is shown.
const Masked = "(set)"

// ListSettings lists every setting that may be set by hand, by service, with its value.
func (o *Ops) ListSettings(ctx context.Context) ([]Setting, error) {
	var out []Setting
	for _, d := range o.cfg.Settings.All() {
		if d.Hidden {
			continue
		}
		v, set, err := o.st.SettingValue(ctx, d.Key)
		if err != nil {
			return nil, err
		}
		s := Setting{Def: d, Value: v, IsSet: set}
		switch {
		case d.Secret && set:
			s.Value = Masked
		case d.Secret:
			s.Value = ""
		case !set:
			s.Value = d.Default
		}
		out = append(out, s)
	}
	return out, nil
}

// GetSetting returns one setting as listed (a secret masked).
func (o *Ops) GetSetting(ctx context.Context, key string) (Setting, error) {
	d, err := o.cfg.Settings.Lookup(key)
	if err != nil {
		return Setting{}, err
	}
	v, set, err := o.st.SettingValue(ctx, key)
	if err != nil {
		return Setting{}, err
	}
	s := Setting{Def: d, Value: v, IsSet: set}
	if d.Secret && set {
		s.Value = Masked
	} else if !set {
		s.Value = d.Default
	}
	return s, nil
}

// The settings of setup itself. The hostname is read by every service; the server follows a
// change at once (greetings, EHLO, Received:, certificates).
var (
	SettingHostname = settings.Def{Key: "hostname", Service: "Mail server", Kind: settings.String, Required: true,
		Help: "the mail server's own name (MX target, EHLO name, greetings, certificate name): a fully qualified host name",
		Check: func(v string) error {
			if _, err := CheckHostname(v); err != nil {
				return fmt.Errorf("not a fully qualified host name such as mail.example.com")
			}
			return nil
		}}
	SettingSetupToken = settings.Def{Key: "setup.token", Service: "Mail server", Kind: settings.String, Hidden: true,
		Help: "one-time token of the setup wizard; empty once setup is done"}
)

// Settings of this package.
func Settings() []settings.Def { return []settings.Def{SettingHostname, SettingSetupToken} }
