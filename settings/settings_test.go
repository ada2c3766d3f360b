package settings

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	num := Def{Key: "x.n", Kind: Int, Default: "5", Min: 1, Max: 10}
	dur := Def{Key: "x.d", Kind: Duration, Default: "5m", Min: int64(time.Second), Max: int64(time.Hour)}
	enum := Def{Key: "x.e", Kind: Enum, Choices: []string{"a", "b"}, Default: "a"}
	req := Def{Key: "x.r", Kind: String, Required: true}
	hp := Def{Key: "x.h", Kind: HostPort}
	secret := Def{Key: "x.s", Kind: Int, Secret: true}
	for _, tc := range []struct {
		def   Def
		value string
		ok    bool
	}{
		{num, "7", true}, {num, "", true}, {num, "abc", false}, {num, "0", false}, {num, "11", false}, {num, " 7", false},
		{dur, "30s", true}, {dur, "banana", false}, {dur, "2h", false},
		{enum, "b", true}, {enum, "bogus", false},
		{req, "", false}, {req, "x", true},
		{hp, "mx.example.test:25", true}, {hp, "mx.example.test", false}, {hp, "h:0", false},
		{Def{Key: "x.b", Kind: Bool}, "yes", false},
	} {
		err := tc.def.Validate(tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("%s.Validate(%q) = %v, want ok %v", tc.def.Key, tc.value, err, tc.ok)
		}
		var se *Error
		if err != nil && !errors.As(err, &se) {
			t.Errorf("%s.Validate(%q): %T is not a *settings.Error", tc.def.Key, tc.value, err)
		}
	}
	if err := secret.Validate("hunter2"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a refused secret is echoed: %v", err)
	}
}

type values map[string]string

func (v values) SettingValue(_ context.Context, key string) (string, bool, error) {
	s, ok := v[key]
	return s, ok, nil
}

func TestRead(t *testing.T) {
	ctx := context.Background()
	num := Def{Key: "x.n", Kind: Int, Default: "5", Min: 10, Max: 20}
	if n, err := num.Int(ctx, values{}); n != 5 || err != nil {
		t.Errorf("unset: %d %v", n, err)
	}
	// A stored value out of today's range keeps working (ranges bound what may be set).
	if n, err := num.Int(ctx, values{"x.n": "3"}); n != 3 || err != nil {
		t.Errorf("stored 3: %d %v", n, err)
	}
	// A stored value of the wrong kind gives the default, and says so.
	if n, err := num.Int(ctx, values{"x.n": "abc"}); n != 5 || err == nil {
		t.Errorf("stored abc: %d %v", n, err)
	}
}

func TestRegistry(t *testing.T) {
	a := []Def{{Key: "b.x", Service: "B"}, {Key: "a.y", Service: "A"}}
	r, err := NewRegistry(a)
	if err != nil {
		t.Fatal(err)
	}
	if all := r.All(); all[0].Key != "a.y" || all[1].Key != "b.x" {
		t.Errorf("order %v", all)
	}
	if _, err := r.Lookup("c.z"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := NewRegistry(a, []Def{{Key: "a.y"}}); err == nil {
		t.Error("a key defined twice was accepted")
	}
	if _, err := NewRegistry([]Def{{Key: "d.n", Kind: Int, Default: "x"}}); err == nil {
		t.Error("a default its own definition refuses was accepted")
	}
}
