package smtp

import (
	"context"
	"strings"
	"testing"
)

// TestOverQuota: a message that would take the recipient over its quota is refused 552 5.2.2
// after DATA and not stored; with OverQuotaTemporary it is 452 4.2.2; within the quota, 250.
func TestOverQuota(t *testing.T) {
	for _, tc := range []struct {
		temporary bool
		want      string
	}{{false, "552 5.2.2 "}, {true, "452 4.2.2 "}} {
		addr, st := startMXWith(t, func(c *Config) { c.OverQuotaTemporary = tc.temporary })
		ctx := context.Background()
		if err := st.SetQuota(ctx, "alice@example.test", 2000); err != nil {
			t.Fatal(err)
		}
		send := func(size int, want string) {
			c := dialMX(t, addr)
			c.cmd("EHLO a.test", "250 ")
			c.cmd("MAIL FROM:<x@remote.test>", "250 ")
			c.cmd("RCPT TO:<alice@example.test>", "250 ")
			c.cmd("DATA", "354 ")
			c.cmd("Subject: q\r\n\r\n"+strings.Repeat("y", size)+"\r\n.", want)
		}
		send(500, "250 ")
		send(3000, tc.want)
		if n, _ := st.CountRows(ctx, "messages"); n != 1 {
			t.Errorf("%d messages stored, want only the one within quota", n)
		}
	}
}
