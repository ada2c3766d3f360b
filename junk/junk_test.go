package junk_test

import (
	"context"
	"fmt"
	"mailstead/mailtest/storetest"
	"slices"
	"strings"
	"testing"

	"mailstead/junk"
	"mailstead/store"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want []string // tokens that must be present
		not  []string // tokens that must be absent
	}{
		{
			name: "headers and plain body",
			msg:  "From: Alice Example <Alice@Example.ORG>\r\nSubject: Lunch tomorrow?\r\nX-Mailstead-Junk: 0.01 (forged)\r\n\r\nShall we meet at noon?\r\n",
			want: []string{"from:alice@example.org", "fromdom:example.org", "fromname:alice", "subject:lunch", "subject:tomorrow", "shall", "meet", "noon", "hn:subject"},
			not:  []string{"hn:x-mailstead-junk", "forged", "we", "at"},
		},
		{
			name: "quoted-printable latin-1 decoded",
			msg:  "From: x@example.com\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe aus M=FCnchen\r\n",
			want: []string{"grüße", "münchen"},
		},
		{
			name: "encoded subject",
			msg:  "From: x@example.com\r\nSubject: =?utf-8?B?R3JhdGlzIFJvbGV4?=\r\n\r\nhi\r\n",
			want: []string{"subject:gratis", "subject:rolex"},
		},
		{
			name: "html links and attachment names",
			msg: "From: x@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n" +
				"<p>Click <a href=\"https://www.cheap-pills.example/buy?id=1\">here</a> now</p>\r\n--b\r\n" +
				"Content-Type: application/octet-stream; name=\"invoice.PDF.exe\"\r\nContent-Disposition: attachment; filename=\"invoice.PDF.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n",
			want: []string{"url:www.cheap-pills.example", "url:cheap-pills.example", "click", "here", "att:invoice.pdf.exe", "attext:.exe", "tag:a", "part:application/octet-stream"},
			not:  []string{"tvqqaamaaaaeaaaa"},
		},
		{
			name: "verified domains from our Authentication-Results",
			msg:  "Authentication-Results: mx.example.net; dkim=pass header.d=bank.example; spf=pass smtp.mailfrom=bounce@mail.bank.example\r\nFrom: x@bank.example\r\n\r\nhi\r\n",
			want: []string{"auth:bank.example", "auth:mail.bank.example"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := junk.Tokenize([]byte(tt.msg)).Tokens
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("token %q missing from %q", w, got)
				}
			}
			for _, w := range tt.not {
				if slices.Contains(got, w) {
					t.Errorf("token %q present in %q", w, got)
				}
			}
		})
	}
}

func TestKeyIgnoresFilterHeader(t *testing.T) {
	a := "Subject: hi\r\n\r\nbody\r\n"
	b := "X-Mailstead-Junk: 0.50 (x)\r\nSubject: hi\r\n\r\nbody\r\n"
	if junk.Key([]byte(a)) != junk.Key([]byte(b)) {
		t.Error("the filter's own header changes the content key")
	}
	if junk.Key([]byte(a)) == junk.Key([]byte("Subject: hi\r\n\r\nother\r\n")) {
		t.Error("different bodies share a key")
	}
}

func TestRemoveHeader(t *testing.T) {
	in := "X-Mailstead-Junk: 0.00\r\n (folded)\r\nSubject: s\r\nx-mailstead-junk: 0.01\r\n\r\nX-Mailstead-Junk: in body\r\n"
	got := string(junk.RemoveHeader([]byte(in), junk.HeaderName))
	if want := "Subject: s\r\n\r\nX-Mailstead-Junk: in body\r\n"; got != want {
		t.Errorf("RemoveHeader = %q, want %q", got, want)
	}
}

// newFilter opens a real store in a temp dir with one account.
func newFilter(t testing.TB) (*junk.Filter, *store.Store, int64) {
	t.Helper()
	st := storetest.Open(t, "example.net")
	acc := storetest.Account(t, st, "me@example.net", "correct horse battery")
	return &junk.Filter{Store: st}, st, acc.ID
}

func msg(from, subject, body string, extra ...string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: me@example.net\r\nSubject: %s\r\n%s\r\n%s\r\n", from, subject, strings.Join(extra, ""), body))
}

var (
	spams = []string{
		"Cheap pills online, viagra and cialis discount pharmacy, order now http://pills.example/buy",
		"Lose weight fast with our miracle diet pills, order now, discount offer http://pills.example/x",
		"Exclusive casino bonus, claim your free money now, limited offer http://casino.example/",
		"You have won a lottery prize, claim your money now, send your bank details",
		"Discount rolex watches, replica luxury, order now limited offer http://watches.example",
	}
	hams = []string{
		"Hi, the meeting about the quarterly report moved to Thursday afternoon. Bring the slides.",
		"Thanks for the review of my patch, I changed the tests as you suggested and pushed again.",
		"Are we still on for dinner with the family on Sunday? Mum asked about the recipe.",
		"The build on the main branch failed again, the linker complains about a missing symbol.",
		"Attached are the photos from the hiking trip, the weather on the ridge was great.",
	}
)

func train(t *testing.T, f *junk.Filter, acc int64) {
	t.Helper()
	ctx := context.Background()
	for i, b := range spams {
		if _, err := f.Train(ctx, acc, msg(fmt.Sprintf("promo%d@spam%d.example", i, i), "Offer "+b[:20], b), true); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range hams {
		if _, err := f.Train(ctx, acc, msg(fmt.Sprintf("friend%d@example.org", i), "Re: "+b[:15], b), false); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClassify(t *testing.T) {
	f, st, acc := newFilter(t)
	ctx := context.Background()

	// Untrained: no opinion either way, and the header says why.
	v, ok, err := f.Classify(ctx, acc, msg("a@b.example", "hello", "cheap pills"))
	if err != nil || !ok || v.Spam || v.Score != 0.5 {
		t.Fatalf("untrained: %+v ok=%v err=%v", v, ok, err)
	}
	train(t, f, acc)

	tests := []struct {
		name     string
		msg      []byte
		spam     bool
		reason   string // a reason the header must give
		min, max float64
	}{
		{"known spam tokens", msg("deals@new-spam.example", "Offer", "Discount pills, order now, claim your free money, limited offer http://pills.example/new"),
			true, "sender never seen", 0.9, 1},
		{"known ham tokens", msg("colleague@example.org", "report", "The quarterly report slides for the meeting on Thursday, see the tests and the build."),
			false, "", 0, 0.2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok, err := f.Classify(ctx, acc, tt.msg)
			if err != nil || !ok {
				t.Fatal(ok, err)
			}
			if v.Spam != tt.spam || v.Score < tt.min || v.Score > tt.max {
				t.Errorf("verdict %+v, want spam=%v score in [%v, %v]", v, tt.spam, tt.min, tt.max)
			}
			if tt.reason != "" && !slices.Contains(v.Reasons, tt.reason) {
				t.Errorf("reasons %q lack %q", v.Reasons, tt.reason)
			}
			h := v.Header()
			if !strings.HasPrefix(h, "X-Mailstead-Junk: ") || !strings.HasSuffix(h, ")\r\n") || strings.ContainsAny(h[:len(h)-2], "\r\n") {
				t.Errorf("header %q", h)
			}
		})
	}

	// A reply in a thread the user started scores low even when its words look like spam.
	sent := []byte("From: me@example.net\r\nTo: partner@shop.example\r\nMessage-ID: <order-42@example.net>\r\nSubject: order\r\n\r\nPlease send the discount offer.\r\n")
	if err := f.NoteSent(ctx, acc, sent); err != nil {
		t.Fatal(err)
	}
	reply := msg("sales@other-shop.example", "Re: order", "Discount offer, order now, limited offer, claim your free money", "In-Reply-To: <order-42@example.net>\r\n")
	v, _, err = f.Classify(ctx, acc, reply)
	if err != nil {
		t.Fatal(err)
	}
	if v.Spam || v.Score > 0.2 || !slices.Contains(v.Reasons, "reply in your thread") {
		t.Errorf("reply in a known thread: %+v", v)
	}
	// And the same words without the thread are spam: the thread made the difference.
	v, _, _ = f.Classify(ctx, acc, msg("sales@other-shop.example", "order", "Discount offer, order now, limited offer, claim your free money"))
	if !v.Spam {
		t.Errorf("same words outside the thread: %+v", v)
	}

	// A threshold of 1 files nothing as spam; a disabled filter gives no verdict.
	if err := st.SetJunkSettings(ctx, acc, true, 1); err != nil {
		t.Fatal(err)
	}
	f.Forget(acc)
	if v, _, _ := f.Classify(ctx, acc, tests[0].msg); v.Spam {
		t.Errorf("threshold 1: %+v", v)
	}
	if err := st.SetJunkSettings(ctx, acc, false, 0); err != nil {
		t.Fatal(err)
	}
	f.Forget(acc)
	if _, ok, _ := f.Classify(ctx, acc, tests[0].msg); ok {
		t.Error("disabled filter classified")
	}
}

func TestTrainIdempotent(t *testing.T) {
	f, st, acc := newFilter(t)
	ctx := context.Background()
	m := msg("x@y.example", "hello", "some words here")
	train(t, f, acc)
	base, _ := st.JunkSettingsOf(ctx, acc)
	// The filter keeps the model in memory from here on; each training must update both.
	if _, _, err := f.Classify(ctx, acc, m); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		spam          bool
		changed       bool
		wantHam, want int64
	}{
		{true, true, 0, 1},
		{true, false, 0, 1}, // copied into Junk again: counted once
		{false, true, 1, 0}, // moved out: the spam count moves to ham
		{false, false, 1, 0},
		{true, true, 0, 1},
	}
	for i, s := range steps {
		changed, err := f.Train(ctx, acc, m, s.spam)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := st.JunkSettingsOf(ctx, acc)
		_, _, counts, _ := st.JunkModel(ctx, acc)
		if changed != s.changed || js.Ham-base.Ham != s.wantHam || js.Spam-base.Spam != s.want || counts["words"] != [2]int64{s.wantHam, s.want} {
			t.Errorf("step %d: changed=%v totals=%d/%d token=%v", i, changed, js.Ham, js.Spam, counts["words"])
		}
		cached, _, _ := f.Classify(ctx, acc, m)
		fresh, _, _ := (&junk.Filter{Store: st}).Classify(ctx, acc, m)
		if cached.Score != fresh.Score {
			t.Errorf("step %d: cached model scores %v, the stored one %v", i, cached.Score, fresh.Score)
		}
	}
}
