package smtp

import (
	"context"
	"net"
	"strings"
	"testing"

	"mailstead/mailtest/testkit"
	"mailstead/store"
)

// TestOverQuota: a message that would take the recipient over its quota is refused 552 5.2.2
// after DATA and not stored; with OverQuotaTemporary it is 452 4.2.2; within the quota, 250.
func TestOverQuota(t *testing.T) {
	for _, tc := range []struct {
		temporary bool
		want      string
	}{{false, "552 5.2.2 "}, {true, "452 4.2.2 "}} {
		st, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		ctx := context.Background()
		st.AddDomain(ctx, "example.test")
		if _, err := st.AddAccount(ctx, "alice@example.test", "pw", false); err != nil {
			t.Fatal(err)
		}
		if err := st.SetQuota(ctx, "alice@example.test", 2000); err != nil {
			t.Fatal(err)
		}
		srv := NewMX(Config{Store: st, Hostname: func() string { return "mx.example.test" }, Limits: DefaultLimits,
			TLSConfig: testkit.SelfSignedTLS(t, "mx.example.test"), OverQuotaTemporary: tc.temporary})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Shutdown(context.Background()) })
		send := func(size int, want string) {
			c := dialMX(t, l.Addr().String())
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
