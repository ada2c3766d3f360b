package mailauth

import (
	"strings"
)

// authResultsHeader formats the Authentication-Results field (RFC 8601
// section 2.2) for r, one resinfo per folded line, ending in CRLF.
func (c *Checker) authResultsHeader(r *Result) string {
	var parts []string

	ipr := string(r.IPRev.Status) + reason(r.IPRev.Reason) + " policy.iprev=" + pvalue(r.IPRev.IP)
	if len(r.IPRev.Names) > 0 {
		ipr += " (" + commentText(strings.Join(r.IPRev.Names, " ")) + ")"
	}
	parts = append(parts, "iprev="+ipr)

	if r.SPF.Sender != "" {
		parts = append(parts, "spf="+string(r.SPF.Status)+reason(r.SPF.Reason)+" smtp.mailfrom="+pvalue(r.SPF.Sender))
	}
	if r.HeloSPF.Sender != "" {
		parts = append(parts, "spf="+string(r.HeloSPF.Status)+reason(r.HeloSPF.Reason)+" smtp.helo="+pvalue(r.HeloSPF.Domain))
	}
	if r.SPF.Sender == "" && r.HeloSPF.Sender == "" {
		parts = append(parts, "spf=none")
	}

	if len(r.DKIM) == 0 {
		parts = append(parts, "dkim=none")
	}
	for _, d := range r.DKIM {
		s := "dkim=" + string(d.Status) + reason(d.Reason)
		if d.Domain != "" {
			s += " header.d=" + pvalue(d.Domain)
		}
		if d.Selector != "" {
			s += " header.s=" + pvalue(d.Selector)
		}
		if d.Algorithm != "" {
			s += " header.a=" + pvalue(d.Algorithm)
		}
		if d.B != "" {
			// RFC 6008: enough of the signature to tell signatures apart.
			b := d.B
			if len(b) > 8 {
				b = b[:8]
			}
			s += " header.b=" + pvalue(b)
		}
		parts = append(parts, s)
	}

	dm := "dmarc=" + string(r.DMARC.Status) + reason(r.DMARC.Reason)
	if r.DMARC.Policy != "" {
		dm += " (p=" + r.DMARC.Policy
		if r.DMARC.Status == StatusFail && r.DMARC.Applied != r.DMARC.Policy {
			dm += " applied=" + r.DMARC.Applied
		}
		dm += ")"
	}
	if r.DMARC.FromDomain != "" {
		dm += " header.from=" + pvalue(r.DMARC.FromDomain)
	}
	parts = append(parts, dm)

	return "Authentication-Results: " + pvalue(c.Hostname) + ";\r\n\t" + strings.Join(parts, ";\r\n\t") + "\r\n"
}

// reason formats a reason= property (RFC 8601 section 2.2), or nothing.
func reason(s string) string {
	if s == "" {
		return ""
	}
	return " reason=" + quote(s)
}

// pvalue writes v as a token when it is one, as an addr-spec when it is a
// plain dot-atom address (RFC 8601 pvalue), and as a quoted-string
// otherwise.
func pvalue(v string) string {
	if v != "" && isToken(v) {
		return v
	}
	if local, domain, ok := strings.Cut(v, "@"); ok && isDotAtom(local) && isToken(domain) {
		return v
	}
	return quote(v)
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// isDotAtom: RFC 5322 section 3.2.3 dot-atom-text.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !(c >= '0' && c <= '9') && !strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", rune(c)) {
			return false
		}
	}
	return true
}

// quote makes a quoted-string of s: control characters dropped, quotes and
// backslashes escaped, at most 200 bytes kept.
func quote(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < ' ' || c == 0x7f:
			b.WriteByte(' ')
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// commentText makes s safe inside a comment.
func commentText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == '(' || r == ')' || r == '\\' {
			return ' '
		}
		return r
	}, s)
}
