package junk_test

import (
	"testing"

	"mailstead/junk"
)

// FuzzTokenize: no input makes the tokenizer panic or exceed its token bound; spam is malformed
// on purpose, and a panic here would take the MX path down.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n",
		"Content-Type: text/html\r\n\r\n<a href=   >x</a><a href=\"http://x.example/\">y</a>",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\nz\r\n--b--\r\n",
		"Authentication-Results: x; dkim=pass header.d=\r\n\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		feat := junk.Tokenize(msg)
		if len(feat.Tokens) > 1000 {
			t.Fatalf("%d tokens", len(feat.Tokens))
		}
		_ = junk.Key(msg)
		_ = junk.RemoveHeader(msg, junk.HeaderName)
	})
}
