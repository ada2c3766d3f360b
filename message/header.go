// Package message owns the bytes of a mail message (RFC 5322): it splits the header section into
// fields, unfolds and looks them up, extracts addresses with one parser, and normalises line
// endings as a stream. It never reads MIME bodies (go-message does), the network or the store.
package message

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Field is one field of a header section as it is on the wire: Raw holds the name, the colon,
// the value with its folding and the line ending(s), byte for byte.
type Field struct {
	Name  string // as written, without surrounding space; "" for a line without a colon
	Raw   []byte
	Start int // offset of Raw in the message
}

// Value returns the unfolded value (RFC 5322 §2.2.3: line endings removed), trimmed of
// surrounding white space.
func (f Field) Value() string {
	i := bytes.IndexByte(f.Raw, ':')
	if i < 0 {
		return ""
	}
	v := string(f.Raw[i+1:])
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
	}
	return strings.TrimSpace(v)
}

// Header is a message's header section, field by field in order.
type Header []Field

// ParseHeader splits the header section of msg into fields. The header ends at the first empty
// line (RFC 5322 §2.1); a line starting with space or tab continues the previous field. CRLF and
// bare LF endings are both accepted (messages from files may have either). bodyStart is the
// offset just after the empty line, or len(msg) when there is none. A line without a colon
// becomes a field with an empty name, so that the fields always tile the header exactly.
func ParseHeader(msg []byte) (h Header, bodyStart int) {
	h, bodyStart, _ = parseHeader(msg)
	return h, bodyStart
}

// parseHeader is ParseHeader that also says whether the empty line was found.
func parseHeader(msg []byte) (h Header, bodyStart int, complete bool) {
	pos := 0
	for pos < len(msg) {
		end := lineEnd(msg, pos)
		line := msg[pos:end]
		if isBlankLine(line) {
			return h, end, true
		}
		if (line[0] == ' ' || line[0] == '\t') && len(h) > 0 {
			f := &h[len(h)-1]
			f.Raw = msg[f.Start:end]
		} else {
			name := ""
			if i := bytes.IndexByte(line, ':'); i >= 0 {
				name = strings.TrimSpace(string(line[:i]))
			}
			h = append(h, Field{Name: name, Raw: msg[pos:end], Start: pos})
		}
		pos = end
	}
	return h, len(msg), false
}

// Values returns the unfolded values of every field called name (case-insensitive), in order.
func (h Header) Values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value())
		}
	}
	return out
}

// Get returns the unfolded value of the first field called name, or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value()
		}
	}
	return ""
}

// Has reports whether a field called name is present (even with an empty value).
func (h Header) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Count returns how many fields are called name.
func (h Header) Count(name string) int {
	n := 0
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			n++
		}
	}
	return n
}

// Lookup is ParseHeader(msg) then Get(name), for callers that need one field.
func Lookup(msg []byte, name string) string {
	h, _ := ParseHeader(msg)
	return h.Get(name)
}

// HeaderBytes returns the header section of msg, each field with its line ending, without the
// empty line that ends it (what text/rfc822-headers carries, RFC 6522 §4).
func HeaderBytes(msg []byte) []byte {
	h, _ := ParseHeader(msg)
	if len(h) == 0 {
		return nil
	}
	last := h[len(h)-1]
	return msg[:last.Start+len(last.Raw)]
}

// HeaderLen returns the length of msg's header section including the empty line that ends it.
// complete is false when msg holds no empty line yet: then n is len(msg), and a caller reading a
// prefix of a message must read more to find the end.
func HeaderLen(msg []byte) (n int, complete bool) {
	_, n, complete = parseHeader(msg)
	return n, complete
}

// lineEnd returns the offset after the line starting at pos, including its LF; the end of msg
// when the last line has none.
func lineEnd(msg []byte, pos int) int {
	if i := bytes.IndexByte(msg[pos:], '\n'); i >= 0 {
		return pos + i + 1
	}
	return len(msg)
}

func isBlankLine(line []byte) bool {
	return len(line) == 0 || string(line) == "\r\n" || string(line) == "\n"
}

// MaxHeaderBytes bounds how much of a message ReadHeaderAt reads looking for the end of the
// header section. Real headers are a few KB; a "header" that runs on for megabytes is treated as
// ending at the last complete line before this bound.
const MaxHeaderBytes = 1 << 20

// ReadHeaderAt reads the header section of the size-byte message in r, including the empty line
// that ends it, without reading the body. A header longer than MaxHeaderBytes is cut at its last
// complete line within that bound.
func ReadHeaderAt(r io.ReaderAt, size int64) ([]byte, error) {
	// Read straight into buf, growing it fourfold while the header has not ended: one
	// allocation for the usual message, whose header fits in the first 16 KiB.
	buf := make([]byte, 0, min(size, 16<<10, MaxHeaderBytes))
	for int64(len(buf)) < size {
		want := int(min(int64(max(cap(buf), 16<<10)), size, MaxHeaderBytes))
		if want <= len(buf) {
			break
		}
		buf = slices.Grow(buf, want-len(buf))
		got, err := r.ReadAt(buf[len(buf):want], int64(len(buf)))
		buf = buf[:len(buf)+got]
		if end, complete := HeaderLen(buf); complete {
			return buf[:end], nil
		}
		if err != nil && !(errors.Is(err, io.EOF) && int64(len(buf)) == size) {
			return nil, fmt.Errorf("read header: %w", err)
		}
		if got == 0 && err == nil {
			return nil, fmt.Errorf("read header: %w", io.ErrNoProgress)
		}
		if int64(len(buf)) >= MaxHeaderBytes {
			if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
				return buf[:i+1], nil
			}
			break
		}
		buf = slices.Grow(buf, len(buf)*3)
	}
	return buf, nil
}
