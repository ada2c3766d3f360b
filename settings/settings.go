// Package settings is how a package declares the settings it owns: name, type, default, range,
// help text, and whether a change applies at once or at the next start. Each owner keeps its
// definitions in one place next to the code that uses them; the admin page, `mailstead
// settings` and validation are generated from them. It holds no values (the store persists
// them) and imports nothing of mailstead's.
package settings

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is a setting's type.
type Kind int

const (
	String   Kind = iota // free text (Check may narrow it)
	Int                  // a whole number within Min..Max
	Bool                 // true or false
	Duration             // a Go duration such as 5m or 4h, within Min..Max
	Enum                 // one of Choices
	HostPort             // HOST:PORT
)

func (k Kind) String() string {
	return [...]string{"text", "number", "true/false", "duration", "choice", "host:port"}[k]
}

// Def defines one setting.
type Def struct {
	Key     string // "smtp.max_recipients": the owner's prefix, then the name
	Service string // the group on the settings page ("SMTP", "Outbound queue", …)
	Kind    Kind
	Default string
	// Min and Max bound an Int (inclusive); for a Duration they are nanoseconds. Both zero: no
	// bound.
	Min, Max int64
	Choices  []string // Enum: the allowed values
	Help     string   // one line: what it does, in the operator's words
	// Restart says the owner reads the value at start only: a change applies at the next start,
	// and the CLI and the page say so.
	Restart bool
	// Secret values come from stdin or a password field, are never echoed and are shown masked.
	Secret bool
	// Hidden settings are internal state, neither listed nor settable by hand.
	Hidden bool
	// Required refuses the empty value (which otherwise restores the default).
	Required bool
	// Check adds the owner's own rule to the kind's (a URL, an address list).
	Check func(value string) error
}

// Error refuses a value.
type Error struct {
	Key, Value, Reason string
	Secret             bool
}

func (e *Error) Error() string {
	if e.Secret {
		return e.Key + ": " + e.Reason
	}
	return fmt.Sprintf("%s %q: %s", e.Key, e.Value, e.Reason)
}

// ErrUnknown is a key no package defines.
var ErrUnknown = errors.New("unknown setting")

// Validate checks v against the definition. "" restores the default and is allowed unless the
// setting is Required.
func (d Def) Validate(v string) error {
	bad := func(format string, args ...any) error {
		return &Error{Key: d.Key, Value: v, Reason: fmt.Sprintf(format, args...), Secret: d.Secret}
	}
	if v == "" {
		if d.Required {
			return bad("must not be empty")
		}
		return nil
	}
	if strings.TrimSpace(v) != v || strings.ContainsAny(v, "\r\n\x00") {
		return bad("no leading or trailing spaces or line breaks")
	}
	switch d.Kind {
	case Int:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return bad("give a whole number%s", d.rangeText())
		}
		if !d.inRange(n) {
			return bad("out of range%s", d.rangeText())
		}
	case Bool:
		if v != "true" && v != "false" {
			return bad("give true or false")
		}
	case Duration:
		t, err := time.ParseDuration(v)
		if err != nil {
			return bad("give a duration such as 30s, 5m or 4h%s", d.rangeText())
		}
		if !d.inRange(int64(t)) {
			return bad("out of range%s", d.rangeText())
		}
	case Enum:
		if !slices.Contains(d.Choices, v) {
			return bad("give one of %s", strings.Join(d.Choices, ", "))
		}
	case HostPort:
		host, port, err := net.SplitHostPort(v)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return bad("give HOST:PORT")
		}
	}
	if d.Check != nil {
		if err := d.Check(v); err != nil {
			return bad("%s", err.Error())
		}
	}
	return nil
}

func (d Def) inRange(n int64) bool {
	return (d.Min == 0 && d.Max == 0) || (n >= d.Min && n <= d.Max)
}

func (d Def) rangeText() string {
	if d.Min == 0 && d.Max == 0 {
		return ""
	}
	if d.Kind == Duration {
		return fmt.Sprintf(" from %s to %s", time.Duration(d.Min), time.Duration(d.Max))
	}
	return fmt.Sprintf(" from %d to %d", d.Min, d.Max)
}

// Source reads stored values: the store. ok is false when the setting was never set (or reset).
type Source interface {
	SettingValue(ctx context.Context, key string) (value string, ok bool, err error)
}

// Value is the stored value of d, or its default.
func (d Def) Value(ctx context.Context, src Source) (string, error) {
	v, ok, err := src.SettingValue(ctx, d.Key)
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", d.Key, err)
	}
	if !ok {
		return d.Default, nil
	}
	return v, nil
}

// Int reads an Int setting. A stored value that is not of the setting's kind (written by hand,
// or by an older release) gives the default and an error saying so. The range bounds what may
// be set, not what is read: a value stored before a range was narrowed keeps working.
func (d Def) Int(ctx context.Context, src Source) (int64, error) {
	v, err := d.checked(ctx, src)
	n, _ := strconv.ParseInt(v, 10, 64)
	return n, err
}

// Duration reads a Duration setting (see Int for a refused stored value).
func (d Def) Duration(ctx context.Context, src Source) (time.Duration, error) {
	v, err := d.checked(ctx, src)
	t, _ := time.ParseDuration(v)
	return t, err
}

// Bool reads a Bool setting (see Int for a refused stored value).
func (d Def) Bool(ctx context.Context, src Source) (bool, error) {
	v, err := d.checked(ctx, src)
	return v == "true", err
}

// String reads any setting as text (see Int for a refused stored value).
func (d Def) String(ctx context.Context, src Source) (string, error) {
	return d.checked(ctx, src)
}

func (d Def) checked(ctx context.Context, src Source) (string, error) {
	v, ok, err := src.SettingValue(ctx, d.Key)
	if err != nil {
		return d.Default, fmt.Errorf("setting %s: %w", d.Key, err)
	}
	if !ok {
		return d.Default, nil
	}
	narrow := d
	narrow.Min, narrow.Max = 0, 0
	if verr := narrow.Validate(v); verr != nil {
		return d.Default, fmt.Errorf("stored value refused, using the default %q: %w", d.Default, verr)
	}
	return v, nil
}
