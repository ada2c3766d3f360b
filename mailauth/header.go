package mailauth

import (
	"strings"

	"mailstead/message"
)

// RemoveAuthResults returns msg without the Authentication-Results header
// fields whose authserv-id is authservID (compared case-insensitively, with
// or without a trailing dot).
// RFC 8601 section 5: a border MTA must remove such fields from incoming
// mail, or a sender could claim results we never produced. Every other byte
// of msg is kept as it was. msg itself is not modified.
func RemoveAuthResults(msg []byte, authservID string) []byte {
	fields, _ := message.ParseHeader(msg)
	var out []byte
	last := 0
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "Authentication-Results") {
			continue
		}
		id, ok := parseAuthservID(f.Value())
		if !ok || !sameAuthservID(id, authservID) {
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

// sameAuthservID compares authserv-ids as the host names they are: in any case, and with or
// without the trailing dot of an absolute name ("MX.A.TEST." is ours when we are mx.a.test).
func sameAuthservID(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
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
