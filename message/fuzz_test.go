package message

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseHeader: the fields tile the header exactly, the empty line sits between the last
// field and the body, and values never keep a line ending. Seeds: testdata/fuzz/FuzzParseHeader.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("From: a@b.test\r\nAuthentication-Results: mx.a.test; spf=pass\r\n\r\nbody\r\n"), "mx.a.test")
	f.Add([]byte("Subject: x\r\n\ty\nX: y\n\nbody"), "subject")
	f.Fuzz(func(t *testing.T, msg []byte, name string) {
		h, bodyStart := ParseHeader(msg)
		pos := 0
		for _, fl := range h {
			if fl.Start != pos || !bytes.Equal(msg[fl.Start:fl.Start+len(fl.Raw)], fl.Raw) {
				t.Fatalf("field %q at %d, want at %d", fl.Raw, fl.Start, pos)
			}
			pos += len(fl.Raw)
			if strings.ContainsAny(fl.Value(), "\r\n") {
				t.Fatalf("value of %q keeps a line ending", fl.Raw)
			}
		}
		if pos > bodyStart || bodyStart > len(msg) {
			t.Fatalf("fields end at %d, body at %d, len %d", pos, bodyStart, len(msg))
		}
		if !isBlankLine(msg[pos:bodyStart]) {
			t.Fatalf("between header and body: %q", msg[pos:bodyStart])
		}
		n, complete := HeaderLen(msg)
		if n != bodyStart || (complete && pos == bodyStart) {
			t.Fatalf("HeaderLen %d %v, body at %d, fields end at %d", n, complete, bodyStart, pos)
		}
		if got := h.Get(name); got != "" && !h.Has(name) {
			t.Fatalf("Get(%q) = %q without Has", name, got)
		}
	})
}

// FuzzParseAddressList: no panic, and a list that parses gives addresses that each parse again
// on their own as one mailbox to the same address.
func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{"Alice <a@b.test>", "g: a@b.test, c@d.test;", "undisclosed-recipients:;",
		`"x <e@evil.test>" <a@b.test>`, "=?utf-8?q?=C3=A9?= <é@b.test>", "a@b.test (c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		list, err := ParseAddressList(v)
		if err != nil {
			return
		}
		for _, a := range list {
			again, err := ParseMailbox("<" + a + ">")
			if err != nil || again != a {
				t.Fatalf("%q gave %q, which parses as %q, %v", v, a, again, err)
			}
		}
	})
}

// FuzzNormalizer: any split of the input into writes gives the same output as one write, and the
// output has no bare CR or LF and ends in CRLF unless empty.
func FuzzNormalizer(f *testing.F) {
	f.Add([]byte("a\r\nb\rc\nd\r"), uint8(1))
	f.Add([]byte("x\n.\nMAIL FROM:<a@b>\n"), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		whole := NormalizeCRLF(in)
		var buf bytes.Buffer
		z := NewNormalizer(&buf)
		s := int(step%16) + 1
		for i := 0; i < len(in); i += s {
			z.Write(in[i:min(i+s, len(in))])
		}
		z.Close()
		if !bytes.Equal(buf.Bytes(), whole) {
			t.Fatalf("%q in steps of %d: %q, whole: %q", in, s, buf.Bytes(), whole)
		}
		for i, c := range whole {
			if c == '\r' && (i+1 == len(whole) || whole[i+1] != '\n') || c == '\n' && (i == 0 || whole[i-1] != '\r') {
				t.Fatalf("%q: bare line ending at %d in %q", in, i, whole)
			}
		}
		if len(in) > 0 && !bytes.HasSuffix(whole, crlf) {
			t.Fatalf("%q: %q does not end in CRLF", in, whole)
		}
	})
}
