// Package junk owns the learning junk filter: it turns a message into tokens and reputation
// features, scores them with a per-account Robinson–Fisher classifier, and learns from what the
// user does with mail. It never speaks SQL (the model lives behind the Store interface) and never
// decides where a message goes: the delivery path does, from the Verdict.
package junk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode ISO-8859-x, windows-125x, KOI8 and the like
	"github.com/emersion/go-message/mail"
)

// Limits that keep one message's cost bounded whatever its size: classification must stay near
// 1 ms of CPU for a typical message, and a 50 MB attachment must not make it slower.
const (
	maxTextBytes = 64 << 10 // decoded text read per message, all parts together
	maxTokens    = 1000     // distinct tokens kept per message
	maxParts     = 100
)

// HeaderName is the header that carries the filter's score and reasons. One arriving from outside
// is removed before delivery, so a sender cannot claim a verdict.
const HeaderName = "X-Mailstead-Junk"

// Features is what the classifier and the reputation checks read from one message.
type Features struct {
	Tokens     []string // distinct tokens, headers and body
	From       string   // lower-case From address, "" if none parses
	FromDomain string
	Verified   []string // domains that passed DKIM or SPF in our Authentication-Results
	Refs       []string // Message-IDs in In-Reply-To and References
	MessageID  string
	Rcpts      []string // To, Cc and Bcc addresses (what the user wrote to, for sent mail)
}

// Key identifies a message's content for idempotent training: the same bytes are counted once
// however often they move between mailboxes. The filter's own header is left out, so a message
// downloaded and appended back is still the same message.
func Key(msg []byte) string {
	sum := sha256.Sum256(RemoveHeader(msg, HeaderName))
	return hex.EncodeToString(sum[:16])
}

// Tokenize reads msg (RFC 5322, CRLF or LF) into features. It never fails: whatever does not
// parse is skipped, because spam is often malformed on purpose.
func Tokenize(msg []byte) Features {
	return tokenize(msg, make(map[string]bool, 512))
}

// tokenize is Tokenize with a set for the seen tokens, empty, that the caller may reuse.
func tokenize(msg []byte, seen map[string]bool) Features {
	t := tokenizer{seen: seen}
	t.f.Tokens = make([]string, 0, 512)
	ent, err := gomessage.Read(bytes.NewReader(msg))
	if ent == nil {
		// Not even a header: the bytes are still words.
		_ = err
		t.words("", string(msg[:min(len(msg), maxTextBytes)]))
		return t.features()
	}
	t.header(mail.Header{Header: ent.Header})
	t.entity(ent, 0)
	return t.features()
}

type tokenizer struct {
	f     Features
	seen  map[string]bool
	text  int // decoded text bytes read so far
	parts int
}

func (t *tokenizer) add(tok string) {
	if len(t.f.Tokens) >= maxTokens || t.seen[tok] {
		return
	}
	t.seen[tok] = true
	t.f.Tokens = append(t.f.Tokens, tok)
}

func (t *tokenizer) features() Features { return t.f }

// skipHeaders carry nothing about the sender, or are ours: they would teach the filter about our
// own server, or about itself.
var skipHeaders = map[string]bool{
	"x-mailstead-junk": true, "return-path": true, "delivered-to": true, "date": true,
	"message-id": true, "content-length": true, "status": true, "x-status": true,
	"x-uid": true, "x-keywords": true, "lines": true,
}

// wordHeaders are headers whose text is worth splitting into words under their own prefix.
var wordHeaders = map[string]string{
	"subject": "subject:", "x-mailer": "mailer:", "user-agent": "mailer:", "organization": "org:",
	"content-type": "ct:", "list-id": "list:", "precedence": "prec:",
}

func (t *tokenizer) header(h mail.Header) {
	fields := h.Fields()
	for fields.Next() {
		key := strings.ToLower(fields.Key())
		if skipHeaders[key] || strings.HasPrefix(key, "x-spam-") {
			continue // X-Spam-*: another filter's opinion, which a sender can forge as well
		}
		t.add("hn:" + key) // which headers exist says much about the software that sent it
		if prefix, ok := wordHeaders[key]; ok {
			v, err := fields.Text()
			if err != nil {
				v = fields.Value()
			}
			t.words(prefix, v)
		}
	}
	if addrs, err := h.AddressList("From"); err == nil && len(addrs) > 0 {
		a := strings.ToLower(addrs[0].Address)
		t.f.From = a
		if at := strings.LastIndexByte(a, '@'); at >= 0 {
			t.f.FromDomain = a[at+1:]
		}
		t.add("from:" + a)
		t.add("fromdom:" + t.f.FromDomain)
		t.words("fromname:", addrs[0].Name)
	}
	for _, k := range []string{"To", "Cc", "Bcc"} {
		addrs, _ := h.AddressList(k)
		for _, a := range addrs {
			t.f.Rcpts = append(t.f.Rcpts, strings.ToLower(a.Address))
		}
	}
	if len(t.f.Rcpts) > 10 {
		t.add("rcpts:many")
	}
	if r, err := h.AddressList("Reply-To"); err == nil && len(r) > 0 && !strings.EqualFold(r[0].Address, t.f.From) {
		t.add("replyto:differs")
	}
	t.f.MessageID, _ = h.MessageID()
	for _, k := range []string{"In-Reply-To", "References"} {
		ids, _ := h.MsgIDList(k)
		t.f.Refs = append(t.f.Refs, ids...)
	}
	for _, d := range h.Values("DKIM-Signature") {
		if dom := tagValue(d, "d"); dom != "" {
			t.add("dkimsig:" + strings.ToLower(dom))
		}
	}
	// The topmost Authentication-Results is ours: the receiver removes any that claim our name
	// before adding its own (RFC 8601 §5). Its passes are the only identities worth a history.
	if ar := h.Get("Authentication-Results"); ar != "" {
		t.f.Verified = verifiedDomains(ar)
		for _, d := range t.f.Verified {
			t.add("auth:" + d)
		}
	}
	// Only the topmost Received: it is ours, naming the host that connected. The hops below are
	// the sender's claims, or one's own relays that every message shares.
	for _, r := range h.Values("Received")[:min(1, len(h.Values("Received")))] {
		if from, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(r), "from "), " "); ok && !strings.HasPrefix(r, "by") {
			t.add("rcvd:" + strings.ToLower(from))
		}
	}
}

// verifiedDomains reads dkim=pass header.d=X and spf=pass smtp.mailfrom=Y from one
// Authentication-Results value (RFC 8601 §2.2).
func verifiedDomains(ar string) []string {
	var out []string
	for _, res := range strings.Split(ar, ";") {
		fs := strings.Fields(strings.ToLower(res))
		if len(fs) == 0 {
			continue
		}
		var id string
		switch fs[0] {
		case "dkim=pass":
			id = propValue(fs, "header.d=")
		case "spf=pass":
			id = propValue(fs, "smtp.mailfrom=")
			if at := strings.LastIndexByte(id, '@'); at >= 0 {
				id = id[at+1:]
			}
		}
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

func propValue(fs []string, prefix string) string {
	for _, f := range fs {
		if v, ok := strings.CutPrefix(f, prefix); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// tagValue reads one tag of a DKIM-Signature tag list (RFC 6376 §3.2).
func tagValue(list, tag string) string {
	for _, kv := range strings.Split(list, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == tag {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

// entity walks one MIME entity: text parts become words and URLs, others count by type and name.
func (t *tokenizer) entity(e *gomessage.Entity, depth int) {
	t.parts++
	if t.parts > maxParts || depth > 10 {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err != nil && p != nil && gomessage.IsUnknownCharset(err) {
				err = nil // the bytes are still there, undecoded
			}
			if err != nil {
				if err != io.EOF {
					t.add("mime:broken")
				}
				return
			}
			t.entity(p, depth+1)
		}
	}
	ct, params, err := e.Header.ContentType()
	if err != nil {
		ct = "text/plain"
	}
	disp, dparams, _ := e.Header.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if name != "" {
		if dec, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
			name = dec
		}
		name = strings.ToLower(name)
		t.add("att:" + name)
		if ext := path.Ext(name); ext != "" {
			t.add("attext:" + ext)
		}
	}
	if depth > 0 {
		t.add("part:" + ct)
	}
	if disp == "attachment" || !strings.HasPrefix(ct, "text/") {
		return
	}
	if t.text >= maxTextBytes {
		return
	}
	b, err := io.ReadAll(io.LimitReader(e.Body, int64(maxTextBytes-t.text)))
	if err != nil && len(b) == 0 {
		t.add("body:undecodable")
		return
	}
	t.text += len(b)
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, " ")
	}
	if ct == "text/html" || looksHTML(s) {
		s = t.html(s)
	}
	t.urls(s)
	t.words("", s)
}

// html drops tags (keeping link targets for urls) and returns the text a reader would see.
func (t *tokenizer) html(s string) string {
	var out strings.Builder
	for len(s) > 0 {
		lt := strings.IndexByte(s, '<')
		if lt < 0 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:lt])
		out.WriteByte(' ')
		gt := strings.IndexByte(s[lt:], '>')
		if gt < 0 {
			break
		}
		tag := strings.ToLower(s[lt+1 : lt+gt])
		if name, _, _ := strings.Cut(tag, " "); name != "" {
			t.add("tag:" + strings.TrimPrefix(name, "/"))
		}
		if _, href, ok := strings.Cut(tag, "href="); ok {
			if fs := strings.Fields(href); len(fs) > 0 {
				out.WriteString(" " + strings.Trim(fs[0], `"'`) + " ")
			}
		}
		s = s[lt+gt+1:]
	}
	return strings.NewReplacer("&nbsp;", " ", "&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(out.String())
}

// looksHTML catches HTML sent without a Content-Type saying so, which spam often is.
func looksHTML(s string) bool {
	head := strings.ToLower(s[:min(len(s), 2048)])
	return strings.Contains(head, "<html") || strings.Contains(head, "<body") || strings.Contains(head, "<font")
}

// urls adds the host of every http(s) link and its last two labels: spam changes its paths, but
// rarely the few domains it advertises.
func (t *tokenizer) urls(s string) {
	low := strings.ToLower(s)
	for {
		i := strings.Index(low, "http")
		if i < 0 {
			return
		}
		low = low[i+4:]
		rest, ok := strings.CutPrefix(low, "://")
		if !ok {
			rest, ok = strings.CutPrefix(low, "s://")
		}
		if !ok {
			continue
		}
		end := strings.IndexFunc(rest, func(r rune) bool {
			return !(r == '.' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r))
		})
		if end < 0 {
			end = len(rest)
		}
		host := strings.Trim(rest[:end], ".")
		if host == "" {
			continue
		}
		t.add("url:" + host)
		labels := strings.Split(host, ".")
		if len(labels) > 2 {
			t.add("url:" + strings.Join(labels[len(labels)-2:], "."))
		}
	}
}

// words splits s into lower-case words of 3 to 20 letters or digits; a longer run is counted by
// its length (Graham's "skip" tokens), which catches encoded junk without storing it.
func (t *tokenizer) words(prefix, s string) {
	for i := 0; i < len(s) && len(t.f.Tokens) < maxTokens; {
		if r, size := runeAt(s, i); isSeparator(r) {
			i += size
			continue
		}
		j, n := i, 0
		for j < len(s) {
			r, size := runeAt(s, j)
			if isSeparator(r) {
				break
			}
			j += size
			n++
		}
		w := s[i:j]
		i = j
		for len(w) > 0 && (w[0] == '-' || w[0] == '\'') {
			w, n = w[1:], n-1
		}
		for len(w) > 0 && (w[len(w)-1] == '-' || w[len(w)-1] == '\'') {
			w, n = w[:len(w)-1], n-1
		}
		switch {
		case n < 3:
			continue
		case n > 20:
			t.add(prefix + "skip:" + string(rune('a'+min(n/10, 25))))
			continue
		}
		t.add(prefix + strings.ToLower(w))
	}
}

// runeAt decodes the rune at s[i], ASCII without a call.
func runeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// isSeparator splits words at anything but letters, digits and the few marks spam leans on
// ("$100", "free!!!") or words contain ("don't", "e-mail").
func isSeparator(r rune) bool {
	if r < utf8.RuneSelf {
		c := byte(r)
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '$' || c == '!' || c == '\'' || c == '-')
	}
	return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '$' && r != '!' && r != '\'' && r != '-'
}

// splitHeader splits msg at the first empty line.
func splitHeader(msg []byte) (hdr, body []byte) {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2], msg[i+2:]
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[:i+1], msg[i+1:]
	}
	return msg, nil
}

// nextField returns the first header field of hdr with its continuation lines.
func nextField(hdr []byte) (field, rest []byte) {
	if len(hdr) == 0 {
		return nil, nil
	}
	end := 0
	for {
		nl := bytes.IndexByte(hdr[end:], '\n')
		if nl < 0 {
			return hdr, nil
		}
		end += nl + 1
		if end >= len(hdr) || (hdr[end] != ' ' && hdr[end] != '\t') {
			return hdr[:end], hdr[end:]
		}
	}
}

func fieldIs(field []byte, name string) bool {
	return len(field) > len(name) && field[len(name)] == ':' && strings.EqualFold(string(field[:len(name)]), name)
}

// RemoveHeader drops every field named name from msg's header, leaving the body untouched. A
// message without such a field is returned as is, without a copy.
func RemoveHeader(msg []byte, name string) []byte {
	hdr, body := splitHeader(msg)
	var out []byte
	off := 0
	for f, rest := nextField(hdr); f != nil; f, rest = nextField(rest) {
		switch {
		case fieldIs(f, name) && out == nil:
			out = append(make([]byte, 0, len(msg)), hdr[:off]...)
		case !fieldIs(f, name) && out != nil:
			out = append(out, f...)
		}
		off += len(f)
	}
	if out == nil {
		return msg
	}
	return append(out, body...)
}
