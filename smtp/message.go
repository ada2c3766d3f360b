package smtp

import (
	"fmt"
	"time"
)

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
