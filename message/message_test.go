package message

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
)

func TestParseHeader(t *testing.T) {
	msg := []byte("From: Alice <a@b.test>\r\nSubject: one\r\n two\r\n\tthree\r\nsubject: again\r\nno colon\r\n\r\nbody\r\n")
	h, body := ParseHeader(msg)
	if got := string(msg[body:]); got != "body\r\n" {
		t.Fatalf("body %q", got)
	}
	if got := h.Get("SUBJECT"); got != "one two\tthree" {
		t.Errorf("Get(Subject) = %q", got)
	}
	if got := h.Values("subject"); !slices.Equal(got, []string{"one two\tthree", "again"}) {
		t.Errorf("Values = %q", got)
	}
	if h.Count("Subject") != 2 || !h.Has("from") || h.Has("To") {
		t.Errorf("Count/Has wrong: %+v", h)
	}
	if h[3].Name != "" || string(h[3].Raw) != "no colon\r\n" {
		t.Errorf("line without colon: %+v", h[3])
	}
	if got := string(HeaderBytes(msg)); got != string(msg[:body-2]) {
		t.Errorf("HeaderBytes = %q", got)
	}
}

func TestHeaderLen(t *testing.T) {
	for _, tc := range []struct {
		msg      string
		n        int
		complete bool
	}{
		{"", 0, false},
		{"\r\n", 2, true},
		{"\r\nbody", 2, true},
		{"A: b\r\n\r\n", 8, true},
		{"A: b\r\n\r\nbody\r\n\r\n", 8, true},
		{"A: b\r\n", 6, false},
		{"A: b\r\n\r", 7, false},
		{"A: b\n\nbody", 6, true},
		{"A: b", 4, false},
	} {
		n, complete := HeaderLen([]byte(tc.msg))
		if n != tc.n || complete != tc.complete {
			t.Errorf("HeaderLen(%q) = %d, %v; want %d, %v", tc.msg, n, complete, tc.n, tc.complete)
		}
	}
}

func TestAddresses(t *testing.T) {
	for _, tc := range []struct {
		field, value string
		want         []string
		bad          bool
	}{
		{"From", "Alice <alice@a.test>", []string{"alice@a.test"}, false},
		{"From", `"Bob, Jr." <bob@b.test>, carol@c.test (Carol)`, []string{"bob@b.test", "carol@c.test"}, false},
		{"To", "friends: a@a.test, \"B\" <b@b.test>;, c@c.test", []string{"a@a.test", "b@b.test", "c@c.test"}, false},
		{"To", "undisclosed-recipients:;", []string{}, false},
		{"From", "=?x-unknown?q?Alice?= <alice@a.test>", []string{"alice@a.test"}, false},
		{"From", "=?utf-8?q?J=C3=BCrgen?= <j@a.test>", []string{"j@a.test"}, false},
		{"From", "Jürgen <jürgen@bücher.test>", []string{"jürgen@bücher.test"}, false},
		// A parser that took the last '<' would sign for evil.test; the one parser refuses.
		{"From", `"x <a@evil.test>" <alice@a.test>`, []string{"alice@a.test"}, false},
		{"From", "alice@a.test <mallory@evil.test", nil, true},
		{"From", "no address here", nil, true},
	} {
		msg := []byte(tc.field + ": " + tc.value + "\r\n\r\n")
		h, _ := ParseHeader(msg)
		got, err := h.Addresses(tc.field)
		if tc.bad != (err != nil) {
			t.Errorf("%q: err %v", tc.value, err)
			continue
		}
		if !tc.bad && !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%q: %q, want %q", tc.value, got, tc.want)
		}
	}
	h, _ := ParseHeader([]byte("To: a@a.test\r\n\r\n"))
	if _, err := h.Addresses("Cc"); !errors.Is(err, ErrNoAddress) {
		t.Errorf("missing Cc: %v", err)
	}
	if a, err := ParseMailbox("Sender <s@a.test>"); err != nil || a != "s@a.test" {
		t.Errorf("ParseMailbox: %q %v", a, err)
	}
	if got := DisplayedAddress("broken <<a@evil.test>"); got != "a@evil.test" {
		t.Errorf("DisplayedAddress = %q", got)
	}
}

func TestNormalizeCRLF(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a", "a\r\n"},
		{"a\r\n", "a\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\rb\r", "a\r\nb\r\n"},
		{"a\r\r\nb", "a\r\n\r\nb\r\n"},
		// Smuggling: a bare-LF or bare-CR "end of data" becomes an ordinary line with a dot.
		{"x\n.\nMAIL FROM:<a@b>\n", "x\r\n.\r\nMAIL FROM:<a@b>\r\n"},
		{"x\r.\rRCPT", "x\r\n.\r\nRCPT\r\n"},
		{"\n\r", "\r\n\r\n"},
	} {
		if got := string(NormalizeCRLF([]byte(tc.in))); got != tc.want {
			t.Errorf("NormalizeCRLF(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNormalizerChunks feeds a message one byte at a time: a CR at the end of one Write and its
// LF at the start of the next must still make one CRLF.
func TestNormalizerChunks(t *testing.T) {
	in := []byte("a\r\nb\rc\nd\r\n\r\ne\r")
	var buf bytes.Buffer
	z := NewNormalizer(&buf)
	for i := range in {
		if n, err := z.Write(in[i : i+1]); n != 1 || err != nil {
			t.Fatalf("Write: %d %v", n, err)
		}
	}
	z.Close()
	if want := NormalizeCRLF(in); !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("chunked %q, whole %q", buf.Bytes(), want)
	}
	if z.Size() != int64(buf.Len()) {
		t.Fatalf("Size %d, wrote %d", z.Size(), buf.Len())
	}
}

// TestConcat: reads across part boundaries, at any offset and length, give the joined bytes.
func TestConcat(t *testing.T) {
	parts := []string{"Top: 1\r\n", "", "Subject: x\r\n\r\n", "body line\r\n"}
	var srcs []Source
	for _, p := range parts {
		srcs = append(srcs, Bytes([]byte(p)))
	}
	c := NewConcat(srcs...)
	whole := "Top: 1\r\nSubject: x\r\n\r\nbody line\r\n"
	if c.Size() != int64(len(whole)) {
		t.Fatalf("Size %d, want %d", c.Size(), len(whole))
	}
	for off := 0; off <= len(whole); off++ {
		for n := 0; off+n <= len(whole)+2; n++ {
			p := make([]byte, n)
			got, err := c.ReadAt(p, int64(off))
			want := whole[off:min(off+n, len(whole))]
			if string(p[:got]) != want || (got < n) != (err == io.EOF) {
				t.Fatalf("ReadAt(%d, %d) = %q, %v; want %q", n, off, p[:got], err, want)
			}
		}
	}
}
