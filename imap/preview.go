package imap

import (
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
)

// maxPreview is RFC 8970 §3's bound: a preview holds at most 256 characters.
const maxPreview = 256

// htmlTag matches tags and comments, removed when the only text is HTML.
var htmlTag = regexp.MustCompile(`(?s)<!--.*?-->|<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)

// preview is FETCH PREVIEW (RFC 8970): the start of the message's first text part, decoded
// (transfer encoding and charset), white space runs shown as one space, at most 256 characters
// and never a partial one. A message without text gets "". The message is read as a stream, up
// to the end of its first text part, so a large attachment after it is never read.
func preview(msg io.Reader) string {
	e, _ := gomessage.Read(msg) // unknown charsets still give a readable entity
	if e == nil {
		return ""
	}
	text, html := firstText(e, 0)
	if text == "" && html != "" {
		text = htmlTag.ReplaceAllString(html, " ")
		text = strings.NewReplacer("&nbsp;", " ", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#39;", "'").Replace(text)
	}
	text = strings.Join(strings.Fields(strings.ToValidUTF8(text, "")), " ")
	if utf8.RuneCountInString(text) > maxPreview {
		text = string([]rune(text)[:maxPreview])
	}
	return text
}

// firstText finds the first text/plain part that is not an attachment, and the first
// text/html one, reading a bounded amount of each.
func firstText(e *gomessage.Entity, depth int) (text, html string) {
	if depth > 20 {
		return "", ""
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			part, err := mr.NextPart()
			if err != nil {
				return text, html
			}
			t, h := firstText(part, depth+1)
			if html == "" {
				html = h
			}
			if t != "" {
				return t, html
			}
		}
	}
	if disp, _, _ := e.Header.ContentDisposition(); disp == "attachment" {
		return "", ""
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && t != "text/plain" && t != "text/html" {
		return "", ""
	}
	b, _ := io.ReadAll(io.LimitReader(e.Body, 64<<10))
	if t == "text/html" {
		return "", string(b)
	}
	return string(b), ""
}
