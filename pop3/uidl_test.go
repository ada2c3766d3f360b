package pop3

import (
	"strings"
	"testing"
)

func TestValidUIDL(t *testing.T) {
	for uidl, want := range map[string]bool{
		"mem-1": true, "a": true, "~!": true, strings.Repeat("x", 70): true,
		"": false, "a b": false, strings.Repeat("x", 71): false, "caf\xc3\xa9": false, "\x7f": false,
	} {
		if got := validUIDL(uidl); got != want {
			t.Errorf("validUIDL(%q) = %v, want %v", uidl, got, want)
		}
	}
}
