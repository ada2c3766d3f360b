package message

import (
	"fmt"
	"testing"
)

func TestParseGroupedAddressList(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`Alice <alice@example.test>`, `[{false  [{Alice  alice example.test}]}]`},
		{`undisclosed-recipients:;`, `[{true undisclosed-recipients []}]`},
		{`A Group:Ed Jones <c@a.test>,joe@where.test;, x@y.test`,
			`[{true A Group [{Ed Jones  c a.test} {  joe where.test}]} {false  [{  x y.test}]}]`},
		{`<@route.example:user@domain.org>`, `[{false  [{ @route.example user domain.org}]}]`},
		{`Joe <@r1.ex,@r2.ex:user@domain.org>`, `[{false  [{Joe @r1.ex,@r2.ex user domain.org}]}]`},
		{`<user-from (comment)@ (comment) domain.org>`, `[{false  [{  user-from domain.org}]}]`},
		{`Pete(A nice \) chap) <pete(his account)@silly.test(his host)>`, `[{false  [{Pete  pete silly.test}]}]`},
		{`"Doe, John" <"j doe"@[192.0.2.1]>`, `[{false  [{Doe, John  j doe [192.0.2.1]}]}]`},
		{`John Q. Public <jqp@example.test>`, `[{false  [{John Q. Public  jqp example.test}]}]`},
		{`=?utf-8?q?J=C3=B6rg?= =?utf-8?q?_M?= <j@example.test>`, `[{false  [{Jörg M  j example.test}]}]`},
		{`,,a@b.test,,`, `[{false  [{  a b.test}]}]`},
	} {
		got, err := ParseGroupedAddressList(tc.in)
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("%s\n got %v %v\nwant %s", tc.in, got, err, tc.want)
		}
	}
	// What does not parse is reported and skipped; the rest is kept.
	got, err := ParseGroupedAddressList(`broken, ok@example.test, <also broken`)
	if err == nil || fmt.Sprint(got) != `[{false  [{  ok example.test}]}]` {
		t.Errorf("partly broken list: %v %v", got, err)
	}
}

func FuzzParseGroupedAddressList(f *testing.F) {
	for _, s := range []string{`a@b`, `g:a@b,(c)<@r:d@e>;`, `"x\"y" <z@[1.2]>`, `((nested) comment) a@b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		groups, _ := ParseGroupedAddressList(s)
		for _, g := range groups {
			for _, m := range g.Mailboxes {
				if m.Local == "" || m.Domain == "" {
					t.Fatalf("%q gave a mailbox without local part or domain: %+v", s, m)
				}
			}
		}
	})
}
