package smtp

import (
	"bytes"
	"fmt"
	"time"
)

// normalizeCRLF turns every bare LF and bare CR into CRLF and makes the message end in CRLF.
// go-smtp ends DATA only on CRLF.CRLF; normalising here means a bare "\n.\n" that a different
// parser downstream might take for the end of data (SMTP smuggling) never reaches the store as is.
func normalizeCRLF(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/50+2)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// traceHeader is the Received: line of RFC 5321 §4.4, folded as RFC 5322 §2.2.3 allows.
type traceHeader struct {
	helo, ip, by, with, id, tls, forRcpt string
	at                                   time.Time
}

func (h traceHeader) String() string {
	s := fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s (mailstead) with %s id %s", h.helo, h.ip, h.by, h.with, h.id)
	if h.tls != "" {
		s += "\r\n\t(" + h.tls + ")"
	}
	if h.forRcpt != "" {
		s += "\r\n\tfor <" + h.forRcpt + ">"
	}
	return s + ";\r\n\t" + h.at.Format(time.RFC1123Z) + "\r\n"
}
