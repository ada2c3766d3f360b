package mailauth

import (
	"log/slog"
	"strings"

	"mailstead/message"
)

// LogAttrs returns the attributes of the one structured log line per
// received message: ip, helo, mail_from, rcpts, spf, dkim, dmarc, iprev,
// action (and reason when there is one), size, msgid. The caller adds its
// own ids (session, queue or message id).
func (r *Result) LogAttrs(in Input) []slog.Attr {
	dkims := make([]string, 0, len(r.DKIM))
	for _, d := range r.DKIM {
		dkims = append(dkims, string(d.Status)+":"+d.Domain)
	}
	dkim := strings.Join(dkims, ",")
	if dkim == "" {
		dkim = string(StatusNone)
	}
	dmarc := string(r.DMARC.Status)
	if r.DMARC.FromDomain != "" {
		dmarc += ":" + r.DMARC.FromDomain
	}
	ip := ""
	if in.IP != nil {
		ip = in.IP.String()
	}
	attrs := []slog.Attr{
		slog.String("ip", ip),
		slog.String("helo", in.Helo),
		slog.String("mail_from", in.MailFrom),
		slog.Any("rcpts", in.Rcpts),
		slog.String("spf", string(r.SPF.Status)),
		slog.String("dkim", dkim),
		slog.String("dmarc", dmarc),
		slog.String("iprev", string(r.IPRev.Status)),
		slog.String("action", string(r.Action.Verdict)),
	}
	if r.Action.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Action.Reason))
	}
	if len(r.DNSBL) > 0 {
		attrs = append(attrs, slog.Any("dnsbl", r.DNSBL))
	}
	var header []byte
	if in.Message != nil {
		attrs = append(attrs, slog.Int64("size", in.Message.Size()))
		header, _ = in.header()
	}
	if id := messageID(header); id != "" {
		attrs = append(attrs, slog.String("msgid", id))
	}
	return attrs
}

// messageID returns the Message-ID field value, if any.
func messageID(msg []byte) string {
	fields, _ := message.ParseHeader(msg)
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Message-ID") {
			v := f.Value()
			if len(v) > 200 {
				v = v[:200]
			}
			return v
		}
	}
	return ""
}
