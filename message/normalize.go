package message

import (
	"bytes"
	"io"
)

// Normalizer writes a message through to w with every line ending made CRLF: a bare LF and a
// bare CR each become CRLF, and the message is made to end in CRLF when it is closed.
//
// This is the second half of the SMTP smuggling rule (CVE-2023-51764/5/6). The first half is
// go-smtp's dot reader, which ends DATA only on <CRLF>.<CRLF> (RFC 5321 §4.1.1.4), never on a
// bare "\n.\n" or "\r.\r". Normalising what it hands over means such a sequence cannot reach the
// store, the queue or a downstream server as is, where another parser might take it for the
// end of data and read the rest of the body as commands.
//
// A Normalizer keeps at most one byte of state (a CR whose LF may come in the next Write), so
// any message size streams through it.
type Normalizer struct {
	w       io.Writer
	pending bool  // a CR was seen as the last byte of the previous Write
	lastLF  bool  // the last byte written to w was LF
	n       int64 // bytes written to w
}

// NewNormalizer returns a Normalizer writing to w.
func NewNormalizer(w io.Writer) *Normalizer { return &Normalizer{w: w} }

var crlf = []byte("\r\n")

// Write normalises p and writes it to the underlying writer. It returns len(p) on success.
func (z *Normalizer) Write(p []byte) (int, error) {
	in := len(p)
	if z.pending && len(p) > 0 {
		z.pending = false
		if err := z.out(crlf); err != nil {
			return 0, err
		}
		if p[0] == '\n' {
			p = p[1:]
		}
	}
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			return in, z.out(p)
		}
		if i > 0 {
			if err := z.out(p[:i]); err != nil {
				return 0, err
			}
		}
		switch {
		case p[i] == '\n': // bare LF
			p = p[i+1:]
		case i+1 == len(p): // CR at the end: its LF may come next
			z.pending = true
			return in, nil
		case p[i+1] == '\n':
			p = p[i+2:]
		default: // bare CR
			p = p[i+1:]
		}
		if err := z.out(crlf); err != nil {
			return 0, err
		}
	}
	return in, nil
}

func (z *Normalizer) out(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := z.w.Write(b)
	z.n += int64(n)
	z.lastLF = b[len(b)-1] == '\n'
	return err
}

// Close finishes the message: a trailing CR becomes CRLF, and a message that does not end in a
// line ending gets one (RFC 5322 §2.1: every line ends in CRLF). An empty message stays empty.
// It does not close the underlying writer.
func (z *Normalizer) Close() error {
	if z.pending {
		z.pending = false
		return z.out(crlf)
	}
	if z.n > 0 && !z.lastLF {
		return z.out(crlf)
	}
	return nil
}

// Size is the number of bytes written to the underlying writer so far.
func (z *Normalizer) Size() int64 { return z.n }

// NormalizeCRLF is the Normalizer applied to a whole message in memory.
func NormalizeCRLF(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b) + len(b)/50 + 2)
	z := NewNormalizer(&buf)
	z.Write(b) // a bytes.Buffer does not fail
	z.Close()
	return buf.Bytes()
}
