package acme

import (
	"crypto/tls"
	"testing"
	"time"
)

// Keys rotate once a day and the last week's keys stay.
func TestTicketKeysRotate(t *testing.T) {
	var k ticketKeys
	start := time.Now()
	a, b := &tls.Config{}, &tls.Config{}
	k.share(a, start)
	k.share(b, start.Add(time.Hour))
	first := k.keys[0]
	if len(k.keys) != 1 {
		t.Fatalf("two configs shared within a day: %d keys, want 1", len(k.keys))
	}
	for day := 1; day <= 9; day++ {
		k.rotate(start.Add(time.Duration(day)*ticketKeyLife + time.Minute))
		k.rotate(start.Add(time.Duration(day)*ticketKeyLife + 2*time.Minute)) // same day: no new key
	}
	if len(k.keys) != ticketKeysKept || k.keys[len(k.keys)-1] == first {
		t.Fatalf("after 9 days: %d keys, first still kept: %v", len(k.keys), k.keys[len(k.keys)-1] == first)
	}
}
