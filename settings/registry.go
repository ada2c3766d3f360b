package settings

import (
	"fmt"
	"slices"
	"strings"
)

// Registry is every setting of the running program, gathered from the packages that own them.
type Registry struct {
	defs  map[string]Def
	order []string // by service, then key
}

// NewRegistry gathers definitions; a key defined twice is a programming error.
func NewRegistry(groups ...[]Def) (*Registry, error) {
	r := &Registry{defs: map[string]Def{}}
	for _, g := range groups {
		for _, d := range g {
			if _, dup := r.defs[d.Key]; dup {
				return nil, fmt.Errorf("setting %s defined twice", d.Key)
			}
			if err := d.Validate(d.Default); err != nil && d.Default != "" {
				return nil, fmt.Errorf("setting %s: its default is refused: %w", d.Key, err)
			}
			r.defs[d.Key] = d
			r.order = append(r.order, d.Key)
		}
	}
	slices.SortStableFunc(r.order, func(a, b string) int {
		if c := strings.Compare(r.defs[a].Service, r.defs[b].Service); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return r, nil
}

// Lookup finds a definition.
func (r *Registry) Lookup(key string) (Def, error) {
	d, ok := r.defs[key]
	if !ok {
		return Def{}, fmt.Errorf("%q: %w", key, ErrUnknown)
	}
	return d, nil
}

// Validate checks a value for key before it is stored.
func (r *Registry) Validate(key, value string) error {
	d, err := r.Lookup(key)
	if err != nil {
		return err
	}
	return d.Validate(value)
}

// All lists the definitions by service, then key.
func (r *Registry) All() []Def {
	out := make([]Def, len(r.order))
	for i, k := range r.order {
		out[i] = r.defs[k]
	}
	return out
}
