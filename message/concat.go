package message

import (
	"bytes"
	"io"
)

// Source is a message read through ReadAt, as often and wherever needed: in memory
// (bytes.Reader), in a spool file, in the store's chunks, or pieced together by Concat.
type Source interface {
	io.ReaderAt
	Size() int64
}

// Concat is a message made of parts read in order (header lines put on top, a rewritten header,
// the rest of a spooled body) without copying them into one buffer.
type Concat struct {
	parts []Source
	size  int64
}

// NewConcat returns the concatenation of parts.
func NewConcat(parts ...Source) *Concat {
	c := &Concat{}
	for _, p := range parts {
		c.parts = append(c.parts, p)
		c.size += p.Size()
	}
	return c
}

// Bytes is a Source of b.
func Bytes(b []byte) Source { return bytes.NewReader(b) }

// Section is the Source of n bytes of r from off.
func Section(r io.ReaderAt, off, n int64) Source { return io.NewSectionReader(r, off, n) }

// Size is the total length.
func (c *Concat) Size() int64 { return c.size }

// ReadAt reads across part boundaries.
func (c *Concat) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	base := int64(0)
	for _, part := range c.parts {
		ps := part.Size()
		if len(p) == n {
			break
		}
		pos := off + int64(n)
		if pos >= base+ps {
			base += ps
			continue
		}
		want := min(int64(len(p)-n), base+ps-pos)
		m, err := part.ReadAt(p[n:n+int(want)], pos-base)
		n += m
		if err != nil && !(err == io.EOF && int64(m) == want) {
			return n, err
		}
		base += ps
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
