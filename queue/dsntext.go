package queue

import (
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"
)

// Text that reaches a notification from outside (a remote server's reply, the original subject)
// is made safe here: a remote reply may hold NUL, ESC or bare CR bytes, and a subject may be any
// length. Escaped text stays readable and cannot start a new header field or MIME part.

// maxReasonBytes bounds one remote reply quoted in a notice; a Diagnostic-Code line stays well
// under the 998 characters of RFC 5322 §2.1.1.
const maxReasonBytes = 900

// maxSubjectBytes bounds how much of the original subject the notice's Subject repeats.
const maxSubjectBytes = 256

// escapeText replaces control characters (C0, DEL, C1) and invalid UTF-8 with visible \xHH
// escapes, CR and LF with a space, and cuts the result at max bytes on a character boundary.
// With asciiOnly, non-ASCII characters become \x{HHHH} as well (RFC 6533 §3's notation): the
// message/delivery-status part is US-ASCII (RFC 3464 §2.1.2).
func escapeText(s string, max int, asciiOnly bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size <= 1:
			piece = fmt.Sprintf(`\x%02X`, s[i])
		case r == '\r' || r == '\n':
			piece = " "
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			piece = fmt.Sprintf(`\x%02X`, r)
		case r >= 0x80 && asciiOnly:
			piece = fmt.Sprintf(`\x{%04X}`, r)
		default:
			piece = s[i : i+size]
		}
		if b.Len()+len(piece) > max {
			break
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// oneLine is a remote reply quoted in the human-readable part (UTF-8).
func oneLine(s string) string { return escapeText(s, maxReasonBytes, false) }

// asciiLine is a remote reply in the message/delivery-status part (US-ASCII).
func asciiLine(s string) string { return escapeText(s, maxReasonBytes, true) }

// subjectField is the notice's whole Subject field: prefix and the original subject (escaped,
// bounded, RFC 2047 encoded words when not ASCII), folded at spaces so that lines stay within 78
// characters where the words allow and never exceed 998 (RFC 5322 §2.1.1, §2.2.3).
func subjectField(prefix, original string) string {
	s := escapeText(original, maxSubjectBytes, false)
	if !isASCII(s) {
		s = mime.QEncoding.Encode("utf-8", s) // words of at most 75 characters, RFC 2047 §2
	}
	return foldField("Subject", prefix+s)
}

// foldField writes "name: value\r\n", breaking before a space when a line would pass 78
// characters. Words are never cut, so a line is longer only for a single word that is.
func foldField(name, value string) string {
	var b strings.Builder
	line := len(name) + 1
	b.WriteString(name + ":")
	for _, w := range strings.Fields(value) {
		if line > len(name)+1 && line+1+len(w) > 78 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(" " + w)
		line += 1 + len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}
