package mailauth

import (
	"bytes"
	"strings"
	"testing"

	"mailstead/message"
)

// FuzzRemoveAuthResults checks the Authentication-Results remover on arbitrary bytes: removal
// only drops whole fields of the given authserv-id, keeps the body, and is idempotent. (The
// header splitter has its own fuzz target in package message.) Seeds:
// testdata/fuzz/FuzzRemoveAuthResults.
func FuzzRemoveAuthResults(f *testing.F) {
	f.Add([]byte("From: a@b.test\r\nAuthentication-Results: mx.a.test; spf=pass\r\n\r\nbody\r\n"), "mx.a.test")
	f.Add([]byte("Authentication-Results: (c) \"mx.a.test\";\r\n\tdkim=pass\nX: y\n\nbody"), "MX.A.TEST")
	f.Add([]byte("Authentication-Results: MX.A.Test.; spf=pass\r\n\r\nbody\r\n"), "mx.a.test")
	f.Fuzz(func(t *testing.T, msg []byte, id string) {
		fields, _ := message.ParseHeader(msg)
		pos := 0
		for _, fl := range fields {
			pos += len(fl.Raw)
		}
		orig := bytes.Clone(msg)
		out := RemoveAuthResults(msg, id)
		if !bytes.Equal(msg, orig) {
			t.Fatal("input modified")
		}
		if !bytes.HasSuffix(out, msg[pos:]) || len(out) > len(msg) {
			t.Fatalf("body changed: %q -> %q", msg, out)
		}
		if again := RemoveAuthResults(out, id); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", msg, out, again)
		}
		outFields, _ := message.ParseHeader(out)
		for _, fl := range outFields {
			if strings.EqualFold(fl.Name, "Authentication-Results") {
				if got, ok := parseAuthservID(fl.Value()); ok && sameAuthservID(got, id) {
					t.Fatalf("field claiming %q left: %q", id, fl.Raw)
				}
			}
		}
	})
}

// FuzzParseAuthservID: the authserv-id parser never panics and returns a
// token or the content of a quoted-string.
func FuzzParseAuthservID(f *testing.F) {
	for _, s := range []string{"mx.a.test; spf=pass", `"mx.a.test" 1; none`, "(comment (nested) \\) ) mx.a.test;", "(", `"unterminated`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := parseAuthservID(v)
		if ok && !strings.Contains(v, `"`) && !isToken(id) {
			t.Fatalf("%q: id %q is not a token", v, id)
		}
		if !ok && id != "" {
			t.Fatalf("%q: id %q without ok", v, id)
		}
	})
}

// FuzzParseDKIMSignature checks the DKIM-Signature tag parser: no panics,
// valid tag names only, and the fields it returns are normalised. Seeds:
// testdata/fuzz/FuzzParseDKIMSignature.
func FuzzParseDKIMSignature(f *testing.F) {
	f.Add("v=1; a=rsa-sha256; c=relaxed/relaxed; d=b.test; s=ms-rsa; h=From:To; bh=abc=; b=de\r\n\t fg=")
	f.Add("v=1; d=B.Test.; s=x; a=ed25519-sha256; b=")
	f.Add("v=1;;;d=a;d=b")
	f.Fuzz(func(t *testing.T, v string) {
		tags, err := parseTagList(v)
		if err == nil {
			for name := range tags {
				if !validTagName(name) {
					t.Fatalf("%q: bad tag name %q accepted", v, name)
				}
			}
		}
		sig, err := parseDKIMSignature(v)
		if err != nil {
			return
		}
		if sig.Domain != strings.ToLower(sig.Domain) || strings.HasSuffix(sig.Domain, ".") {
			t.Fatalf("domain %q not normalised", sig.Domain)
		}
		if strings.ContainsAny(sig.B, " \t\r\n") {
			t.Fatalf("b= %q keeps white space", sig.B)
		}
		if sig.Domain == "" || sig.Selector == "" || sig.Algorithm == "" {
			t.Fatalf("%q: accepted without d/s/a: %+v", v, sig)
		}
	})
}
