package mailauth

import (
	"bytes"
	"strings"
)

// headerField is one field of a message header section, as it is on the
// wire: Raw holds the name, the colon, the value with its folding and the
// line ending(s), byte for byte.
type headerField struct {
	Name  string // as written, without surrounding space
	Raw   []byte
	Start int // offset of Raw in the message
}

// Value returns the unfolded value (RFC 5322 section 2.2.3): line endings
// removed, leading and trailing white space trimmed.
func (f headerField) Value() string {
	i := bytes.IndexByte(f.Raw, ':')
	if i < 0 {
		return ""
	}
	v := string(f.Raw[i+1:])
	v = strings.ReplaceAll(v, "\r\n", "")
	v = strings.ReplaceAll(v, "\n", "")
	v = strings.ReplaceAll(v, "\r", "")
	return strings.TrimSpace(v)
}

// parseHeader splits the header section of msg into fields. The header ends
// at the first empty line (RFC 5322 section 2.1); a line starting with space
// or tab continues the previous field. CRLF and bare LF endings are both
// accepted. bodyStart is the offset just after the empty line, or len(msg)
// when there is none. A line without a colon becomes a field with an empty
// name, so that no byte is lost.
func parseHeader(msg []byte) (fields []headerField, bodyStart int) {
	pos := 0
	for pos < len(msg) {
		end := lineEnd(msg, pos)
		line := msg[pos:end]
		if isBlankLine(line) {
			return fields, end
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			f := &fields[len(fields)-1]
			f.Raw = msg[f.Start:end]
		} else {
			name := ""
			if i := bytes.IndexByte(line, ':'); i >= 0 {
				name = strings.TrimSpace(string(line[:i]))
			}
			fields = append(fields, headerField{Name: name, Raw: msg[pos:end], Start: pos})
		}
		pos = end
	}
	return fields, len(msg)
}

// lineEnd returns the offset after the line starting at pos, including its
// LF; the end of msg when the last line has none.
func lineEnd(msg []byte, pos int) int {
	if i := bytes.IndexByte(msg[pos:], '\n'); i >= 0 {
		return pos + i + 1
	}
	return len(msg)
}

func isBlankLine(line []byte) bool {
	return len(line) == 0 || string(line) == "\r\n" || string(line) == "\n"
}

// RemoveAuthResults returns msg without the Authentication-Results header
// fields whose authserv-id is authservID (compared case-insensitively).
// RFC 8601 section 5: a border MTA must remove such fields from incoming
// mail, or a sender could claim results we never produced. Every other byte
// of msg is kept as it was. msg itself is not modified.
func RemoveAuthResults(msg []byte, authservID string) []byte {
	fields, _ := parseHeader(msg)
	var out []byte
	last := 0
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "Authentication-Results") {
			continue
		}
		id, ok := parseAuthservID(f.Value())
		if !ok || !strings.EqualFold(id, authservID) {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(msg))
		}
		out = append(out, msg[last:f.Start]...)
		last = f.Start + len(f.Raw)
	}
	if out == nil {
		return msg
	}
	return append(out, msg[last:]...)
}

// parseAuthservID returns the authserv-id at the start of an
// Authentication-Results value (RFC 8601 section 2.2):
//
//	authres-payload = [CFWS] authserv-id [ CFWS authres-version ] ...
//	authserv-id     = value              ; token / quoted-string (RFC 2045)
//
// Comments and white space before it are skipped.
func parseAuthservID(v string) (string, bool) {
	p := &parser{s: v}
	p.skipCFWS()
	if p.done() {
		return "", false
	}
	if p.peek() == '"' {
		return p.quotedString()
	}
	start := p.i
	for !p.done() && isTokenChar(p.peek()) {
		p.i++
	}
	if p.i == start {
		return "", false
	}
	return v[start:p.i], true
}

// parser is a tiny cursor over a header value for RFC 5322 lexical tokens.
type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }
func (p *parser) peek() byte { return p.s[p.i] }

// skipCFWS skips white space and (nested) comments (RFC 5322 section 3.2.2).
// An unterminated comment runs to the end of the value.
func (p *parser) skipCFWS() {
	for !p.done() {
		switch c := p.peek(); {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.i++
		case c == '(':
			depth := 0
			for !p.done() {
				c := p.peek()
				p.i++
				switch c {
				case '\\':
					if !p.done() {
						p.i++
					}
				case '(':
					depth++
				case ')':
					depth--
				}
				if depth == 0 {
					break
				}
			}
		default:
			return
		}
	}
}

// quotedString reads a quoted-string at the cursor and returns its content
// with quoted-pairs resolved.
func (p *parser) quotedString() (string, bool) {
	p.i++ // opening quote
	var b strings.Builder
	for !p.done() {
		c := p.peek()
		p.i++
		switch c {
		case '\\':
			if p.done() {
				return "", false
			}
			b.WriteByte(p.peek())
			p.i++
		case '"':
			return b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

// isTokenChar: RFC 2045 token, any CHAR except SPACE, CTLs and tspecials.
func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}
