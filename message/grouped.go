package message

import (
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"
)

// Mailbox is one mailbox of an address list with its parts kept apart, as IMAP's ENVELOPE
// needs them (RFC 3501 §7.4.2): display name (RFC 2047 words decoded), obsolete source route,
// local part (unquoted) and domain.
type Mailbox struct {
	Name   string
	Route  string // RFC 5322 §4.4 obs-route without its colon ("@a.test,@b.test"), or ""
	Local  string
	Domain string
}

// Addr is the addr-spec, local@domain.
func (m Mailbox) Addr() string { return m.Local + "@" + m.Domain }

// AddressGroup is one element of an address list: a group (RFC 5322 §3.4 "name: a, b;", also
// the empty "undisclosed-recipients:;") or, with IsGroup false, a single mailbox.
type AddressGroup struct {
	IsGroup   bool
	Name      string // the group's display name
	Mailboxes []Mailbox
}

// ParseGroupedAddressList parses an address-list like ParseAddressList but keeps what an IMAP
// ENVELOPE reports: group structure, display names and source routes. It accepts the obsolete
// syntax of RFC 5322 §4.4 (comments and folding white space between the parts of an addr-spec,
// routes, empty list elements), so that "<user (comment)@ (comment) domain.org>" is the
// mailbox user@domain.org. Mailboxes that do not parse are skipped; the error reports the
// first of them, and the result holds everything that did parse.
func ParseGroupedAddressList(value string) ([]AddressGroup, error) {
	p := &addrParser{toks: lexAddresses(value)}
	var out []AddressGroup
	var firstErr error
	for !p.done() {
		if p.is(',') || p.is(';') {
			p.i++ // obs-addr-list: empty elements, and a stray ';'
			continue
		}
		g, err := p.address()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("address list %q: %w", clip(value), err)
			}
			p.skipTo(',')
			continue
		}
		out = append(out, g)
	}
	return out, firstErr
}

type addrToken struct {
	kind byte   // 'w' word (atom or quoted string), 'l' domain literal, or the special itself
	text string // the word, unquoted; the literal with its brackets
	qs   bool   // the word was a quoted string
}

// lexAddresses splits a field value into words and specials, dropping comments and white
// space (RFC 5322 §3.2.2 CFWS).
func lexAddresses(v string) []addrToken {
	var toks []addrToken
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			depth := 0
			for ; i < len(v); i++ {
				if v[i] == '\\' {
					i++
				} else if v[i] == '(' {
					depth++
				} else if v[i] == ')' {
					if depth--; depth == 0 {
						i++
						break
					}
				}
			}
		case c == '"':
			var b strings.Builder
			for i++; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				if v[i] != '\r' && v[i] != '\n' {
					b.WriteByte(v[i])
				}
			}
			i++
			toks = append(toks, addrToken{kind: 'w', text: b.String(), qs: true})
		case c == '[':
			j := strings.IndexByte(v[i:], ']')
			if j < 0 {
				j = len(v) - i - 1
			}
			toks = append(toks, addrToken{kind: 'l', text: v[i : i+j+1]})
			i += j + 1
		case strings.IndexByte("<>@,;:.", c) >= 0:
			toks = append(toks, addrToken{kind: c})
			i++
		default:
			j := i
			for j < len(v) && strings.IndexByte(" \t\r\n()\"[]<>@,;:.", v[j]) < 0 {
				j++
			}
			if j == i { // a lone ']' or similar: skip it
				j++
			} else {
				toks = append(toks, addrToken{kind: 'w', text: v[i:j]})
			}
			i = j
		}
	}
	return toks
}

type addrParser struct {
	toks []addrToken
	i    int
}

func (p *addrParser) done() bool     { return p.i >= len(p.toks) }
func (p *addrParser) is(k byte) bool { return !p.done() && p.toks[p.i].kind == k }

func (p *addrParser) skipTo(k byte) {
	for !p.done() && !p.is(k) {
		p.i++
	}
}

var errAddrSyntax = errors.New("malformed address")

// address = group / mailbox. Both may start with a phrase; what follows it decides.
func (p *addrParser) address() (AddressGroup, error) {
	start := p.i
	words := p.words()
	switch {
	case p.is(':'):
		p.i++
		g := AddressGroup{IsGroup: true, Name: decodePhrase(words)}
		var firstErr error
		for !p.done() && !p.is(';') {
			if p.is(',') {
				p.i++
				continue
			}
			m, err := p.mailbox()
			if err != nil {
				firstErr = err
				for !p.done() && !p.is(',') && !p.is(';') {
					p.i++
				}
				continue
			}
			g.Mailboxes = append(g.Mailboxes, m)
		}
		if p.is(';') {
			p.i++
		}
		return g, firstErr
	default:
		p.i = start
		m, err := p.mailbox()
		return AddressGroup{Mailboxes: []Mailbox{m}}, err
	}
}

// words reads a phrase (or local part): words and dots, as tokens.
func (p *addrParser) words() []addrToken {
	var ws []addrToken
	for !p.done() && (p.is('w') || p.is('.')) {
		ws = append(ws, p.toks[p.i])
		p.i++
	}
	return ws
}

// mailbox = name-addr / addr-spec.
func (p *addrParser) mailbox() (Mailbox, error) {
	words := p.words()
	if p.is('<') {
		p.i++
		m := Mailbox{Name: decodePhrase(words)}
		if p.is('@') || p.is(',') {
			m.Route = p.route()
		}
		local := p.words()
		if err := p.addrSpec(&m, local); err != nil {
			return m, err
		}
		if !p.is('>') {
			return m, fmt.Errorf("%w: no '>'", errAddrSyntax)
		}
		p.i++
		return m, nil
	}
	var m Mailbox
	return m, p.addrSpec(&m, words)
}

// route reads obs-route: "@a,@b:" (RFC 5322 §4.4), returning "@a,@b".
func (p *addrParser) route() string {
	var parts []string
	for !p.done() && !p.is(':') && !p.is('>') {
		if p.is(',') {
			p.i++
			continue
		}
		if !p.is('@') {
			break
		}
		p.i++
		parts = append(parts, "@"+p.domain())
	}
	if p.is(':') {
		p.i++
	}
	return strings.Join(parts, ",")
}

func (p *addrParser) addrSpec(m *Mailbox, local []addrToken) error {
	if len(local) == 0 || !p.is('@') {
		return fmt.Errorf("%w: no addr-spec", errAddrSyntax)
	}
	p.i++
	var b strings.Builder
	for _, t := range local {
		if t.kind == '.' {
			b.WriteByte('.')
		} else {
			b.WriteString(t.text)
		}
	}
	if m.Local = b.String(); m.Local == "" {
		return fmt.Errorf("%w: empty local part", errAddrSyntax)
	}
	if m.Domain = p.domain(); m.Domain == "" {
		return fmt.Errorf("%w: no domain", errAddrSyntax)
	}
	return nil
}

func (p *addrParser) domain() string {
	if p.is('l') {
		p.i++
		return p.toks[p.i-1].text
	}
	var b strings.Builder
	for !p.done() && (p.is('w') || p.is('.')) {
		if p.is('.') {
			b.WriteByte('.')
		} else {
			b.WriteString(p.toks[p.i].text)
		}
		p.i++
	}
	return b.String()
}

// phraseDecoder decodes RFC 2047 words in display names in any charset go-message knows.
var phraseDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodePhrase joins a phrase's words with single spaces (RFC 5322 §3.2.5) and decodes RFC 2047
// encoded words in it; a word that does not decode stays as written.
func decodePhrase(words []addrToken) string {
	var b strings.Builder
	prevEncoded := false
	for i, t := range words {
		text := t.text
		if t.kind == '.' {
			b.WriteByte('.') // obs-phrase allows "John Q. Public"
			continue
		}
		encoded := false
		if !t.qs && strings.HasPrefix(text, "=?") && strings.HasSuffix(text, "?=") {
			if d, err := phraseDecoder.Decode(text); err == nil {
				text, encoded = d, true
			}
		}
		// RFC 2047 §6.2: white space between adjacent encoded words is not shown.
		if i > 0 && (words[i-1].kind == '.' || !(encoded && prevEncoded)) {
			b.WriteByte(' ')
		}
		b.WriteString(text)
		prevEncoded = encoded
	}
	return b.String()
}
