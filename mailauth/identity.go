package mailauth

import (
	"io"
	"mime"
	"strings"

	"golang.org/x/net/idna"

	"mailstead/message"
)

// identityFields are the header fields that say who a message is from (RFC 5322 §3.6.2 and
// §3.6.6). Any of them can be what a reader's client shows as the sender.
var identityFields = []string{"From", "Sender", "Resent-From", "Resent-Sender"}

// Identity is who a message says it is from, as a reader might see it.
type Identity struct {
	// From is the one From address (RFC 5322 §3.6: exactly one From field; here also exactly
	// one mailbox in it, with a valid domain), "" when there is none.
	From string
	// FromProblem says why there is no single valid From address, "" when there is one.
	FromProblem string
	// Shown is every address a reader may see in the identity fields: the addr-specs, and the
	// addresses written into display names, comments or quoted local parts, encoded words
	// decoded. Lower-case, in order, without repeats.
	Shown []string
}

// identityOf reads the identity fields of a header parsed by the message package's one parser.
func identityOf(h message.Header) Identity {
	var id Identity
	seen := map[string]bool{}
	for _, name := range identityFields {
		for _, v := range h.Values(name) {
			for _, a := range ShownAddresses(v) {
				if !seen[a] {
					seen[a] = true
					id.Shown = append(id.Shown, a)
				}
			}
		}
	}
	froms := h.Values("From")
	switch {
	case len(froms) == 0:
		id.FromProblem = "no From field"
	case len(froms) > 1:
		id.FromProblem = "more than one From field"
	default:
		list, err := message.ParseAddressList(froms[0])
		switch {
		case err != nil:
			id.FromProblem = "From does not parse"
		case len(list) != 1:
			id.FromProblem = "From does not hold exactly one address"
		case !validDomain(domainOf(list[0])):
			id.FromProblem = "From address has no valid domain"
		default:
			id.From = list[0]
		}
	}
	return id
}

func validDomain(d string) bool {
	if strings.ContainsFunc(d, func(r rune) bool { return r >= 0x80 }) {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return false
		}
		d = a
	}
	return isDomainName(d)
}

// wordDecoder decodes RFC 2047 encoded words; charsets Go does not know pass through as they
// are, which is enough to find an '@' in them.
var wordDecoder = &mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}

// ShownAddresses returns every address a mail client might show for a header field value: the
// parsed addr-specs, and anything of the form local@domain written in display names, comments
// or quoted local parts, after decoding encoded words. `"admin@a.test" <x@evil.test>`,
// `x@evil.test (admin@a.test)`, `"admin@a.test"@evil.test` and the unterminated
// `admin@a.test <x@evil.test` all show admin@a.test. Lower-case, without repeats.
func ShownAddresses(value string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		a = strings.ToLower(a)
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if list, err := message.ParseAddressList(value); err == nil {
		for _, a := range list {
			add(a)
		}
	}
	text := value
	if d, err := wordDecoder.DecodeHeader(value); err == nil {
		text = d
	}
	for i := 0; i < len(text); i++ {
		if text[i] != '@' {
			continue
		}
		start := i
		for start > 0 && !isAddrDelim(text[start-1]) {
			start--
		}
		end := i + 1
		for end < len(text) && isDomainByte(text[end]) {
			end++
		}
		local, domain := text[start:i], strings.Trim(text[i+1:end], ".-")
		local = local[strings.LastIndexByte(local, '@')+1:]
		if local != "" && domain != "" {
			add(local + "@" + domain)
		}
	}
	return out
}

// isAddrDelim ends a local part when scanning back from '@': white space and RFC 5322 specials
// other than '.'.
func isAddrDelim(c byte) bool {
	return c <= ' ' || strings.IndexByte(`()<>[]:;,"\`, c) >= 0
}

// isDomainByte is a byte of a domain name: letters, digits, '-', '.', and UTF-8 (RFC 6532).
func isDomainByte(c byte) bool {
	return c >= 0x80 || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
