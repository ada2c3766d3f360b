package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"mailstead/message"
	"mailstead/store"
)

// Readers of the two formats people move mail in: mbox (Gmail Takeout among others) and Maildir
// (Dovecot, Courier, mbsync, offlineimap). They turn files into importMessages with mailboxes,
// flags and internal dates; the store does the rest.

type importSource interface {
	Next() (importMessage, error) // io.EOF after the last message
	Total() int64                 // work in all (bytes or files), for the progress line
	Done() int64                  // work done so far
	Close() error
}

func openImportSource(format, path, target string) (importSource, error) {
	switch format {
	case "mbox":
		return openMbox(path, target)
	case "maildir":
		return openMaildir(path, target)
	}
	return nil, usage("import mbox|maildir ADDRESS PATH [MAILBOX]")
}

// importMailbox turns a folder name from another server into a valid mailbox name, so that one
// odd label cannot stop an import: characters IMAP reserves become "_", empty levels go.
func importMailbox(name string) string {
	if canon, err := store.CanonicalMailboxName(name); err == nil {
		return canon
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' || r == utf8.RuneError {
			return '_'
		}
		return r
	}, name)
	var levels []string
	for _, l := range strings.Split(name, "/") {
		if l = strings.TrimSpace(l); l != "" {
			levels = append(levels, l)
		}
	}
	if len(levels) > 16 {
		levels = levels[:16]
	}
	name = strings.Join(levels, "/")
	if len(name) > 512 {
		name = strings.ToValidUTF8(name[:512], "_")
	}
	if canon, err := store.CanonicalMailboxName(name); err == nil {
		return canon
	}
	return "Imported"
}

// ---- mbox ----

// mboxSource reads an mbox file (mboxo or mboxrd, LF or CRLF). A message starts at a "From "
// line that looks like a separator (sender, then a date with a time); body lines quoted as
// ">From " lose one ">" (mboxrd, which reads mboxo files correctly but for lines that
// began with ">From " in the original).
type mboxSource struct {
	f         *os.File
	r         *bufio.Reader
	size      int64
	read      int64
	target    string
	fromLine  string // separator of the next message, once read
	sawText   bool   // a line that is not blank came before the first separator
	started   bool
	lineCount int
}

var mboxSeparator = regexp.MustCompile(`^From \S+\s+[A-Z][a-z]{2}[ ,]+[A-Z][a-z]{2}\s+\d{1,2}\s+\d{1,2}:\d{2}`)

func openMbox(path, target string) (*mboxSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("import: %w", err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("import: %s is a directory, not an mbox file (import maildir?)", path)
	}
	return &mboxSource{f: f, r: bufio.NewReaderSize(f, 1<<16), size: fi.Size(), target: target}, nil
}

func (m *mboxSource) Total() int64 { return m.size }
func (m *mboxSource) Done() int64  { return m.read }
func (m *mboxSource) Close() error { return m.f.Close() }

// line returns the next line without its line ending.
func (m *mboxSource) line() (string, error) {
	s, err := m.r.ReadString('\n')
	m.read += int64(len(s))
	if err != nil && (err != io.EOF || s == "") {
		return "", err
	}
	m.lineCount++
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

func (m *mboxSource) Next() (importMessage, error) {
	if !m.started {
		m.started = true
		for {
			l, err := m.line()
			if err != nil {
				if err == io.EOF && m.sawText {
					// A short file of text with no separator is not an empty mbox.
					return importMessage{}, errors.New("import: not an mbox file: it has no \"From \" separator line")
				}
				if err == io.EOF {
					return importMessage{}, io.EOF
				}
				return importMessage{}, fmt.Errorf("import: read mbox: %w", err)
			}
			if mboxSeparator.MatchString(l) {
				m.fromLine = l
				break
			}
			m.sawText = m.sawText || strings.TrimSpace(l) != ""
			if strings.TrimSpace(l) != "" && m.lineCount > 3 {
				return importMessage{}, errors.New("import: not an mbox file: it does not start with a \"From \" line")
			}
		}
	}
	if m.fromLine == "" {
		return importMessage{}, io.EOF
	}
	from := m.fromLine
	m.fromLine = ""
	var buf bytes.Buffer
	prevBlank := true
	for {
		l, err := m.line()
		if err == io.EOF {
			break
		}
		if err != nil {
			return importMessage{}, fmt.Errorf("import: read mbox: %w", err)
		}
		if prevBlank && mboxSeparator.MatchString(l) {
			m.fromLine = l
			break
		}
		prevBlank = l == ""
		if strings.HasPrefix(strings.TrimLeft(l, ">"), "From ") && strings.HasPrefix(l, ">") {
			l = l[1:]
		}
		buf.WriteString(l)
		buf.WriteString("\r\n")
	}
	data := buf.Bytes()
	// The blank line before the next separator belongs to the mbox, not to the message.
	data = bytes.TrimSuffix(data, []byte("\r\n\r\n"))
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\r\n")) {
		data = append(data, '\r', '\n')
	}
	return m.describe(from, data), nil
}

// describe finds the mailboxes, flags and date of an mbox message from its separator and its
// Status, X-Status and X-Gmail-Labels headers.
func (m *mboxSource) describe(from string, data []byte) importMessage {
	im := importMessage{Data: data}
	date := mboxDate(from)
	hdr, _ := message.ParseHeader(data)
	if date.IsZero() {
		date, _ = hdr.Date()
	}
	if !date.IsZero() {
		im.Date = date.Unix()
	}
	var seen bool
	if len(hdr) > 0 {
		status, xstatus := hdr.Get("Status"), hdr.Get("X-Status")
		seen = strings.Contains(status, "R")
		for _, c := range xstatus {
			switch c {
			case 'A':
				im.Flags = append(im.Flags, `\Answered`)
			case 'F':
				im.Flags = append(im.Flags, `\Flagged`)
			case 'T':
				im.Flags = append(im.Flags, `\Draft`)
			case 'D':
				im.Flags = append(im.Flags, `\Deleted`)
			}
		}
		if labels := hdr.Get("X-Gmail-Labels"); labels != "" || hdr.Has("X-Gmail-Labels") {
			boxes, flags, unread := gmailLabels(labels)
			im.Flags = append(im.Flags, flags...)
			seen = !unread
			if m.target == "" {
				im.Mailboxes = boxes
			}
		}
	}
	if seen {
		im.Flags = append(im.Flags, `\Seen`)
	}
	if m.target != "" {
		im.Mailboxes = []string{m.target}
	} else if len(im.Mailboxes) == 0 {
		im.Mailboxes = []string{"INBOX"}
	}
	return im
}

// mboxDate parses the date of a separator line: asctime ("Thu Jan  1 00:00:00 2020", UTC), or
// with a zone as Gmail writes it ("Sat Jan 20 14:43:28 +0000 2024").
func mboxDate(from string) time.Time {
	f := strings.Fields(from)
	if len(f) < 3 {
		return time.Time{}
	}
	s := strings.Join(f[2:], " ")
	for _, layout := range []string{
		"Mon Jan 2 15:04:05 -0700 2006", "Mon Jan 2 15:04:05 2006", "Mon Jan 2 15:04:05 MST 2006",
		"Mon Jan 2 15:04 2006", "Mon, Jan 2 15:04:05 2006",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// gmailLabels maps Gmail Takeout's X-Gmail-Labels to mailboxes and flags. System labels become
// the matching special-use mailboxes (Inbox, Sent, Drafts, Spam → Junk, Trash), Chat goes to
// Chats; Starred is \Flagged; "Unread" marks an unread message (all others are read); Important,
// Opened, Archived and the Category tabs are not mailboxes. A message left with no mailbox was archived in
// Gmail: it goes to Archive. User labels keep their "/" hierarchy.
func gmailLabels(header string) (mailboxes, flags []string, unread bool) {
	dec := mime.WordDecoder{}
	for _, raw := range splitLabels(header) {
		label, err := dec.DecodeHeader(raw)
		if err != nil {
			label = raw
		}
		label = strings.TrimSpace(label)
		switch strings.ToLower(label) {
		case "":
		case "inbox":
			mailboxes = append(mailboxes, "INBOX")
		case "sent":
			mailboxes = append(mailboxes, "Sent")
		case "drafts":
			mailboxes = append(mailboxes, "Drafts")
			flags = append(flags, `\Draft`)
		case "spam":
			mailboxes = append(mailboxes, "Junk")
		case "trash":
			mailboxes = append(mailboxes, "Trash")
		case "starred":
			flags = append(flags, `\Flagged`)
		case "unread":
			unread = true
		case "chat": // Hangouts and Chat history: kept apart, as Gmail's IMAP shows it
			mailboxes = append(mailboxes, "Chats")
		case "important", "opened", "archived", "muted":
		default:
			if strings.HasPrefix(strings.ToLower(label), "category ") {
				continue
			}
			mailboxes = append(mailboxes, strings.Trim(label, "/"))
		}
	}
	if len(mailboxes) == 0 {
		mailboxes = []string{"Archive"}
	}
	return mailboxes, flags, unread
}

// splitLabels splits on commas outside double quotes.
func splitLabels(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

// ---- Maildir ----

type maildirFile struct {
	path    string
	mailbox string
	flags   []string
}

// maildirSource reads a Maildir: its own cur/ and new/ become INBOX (or the MAILBOX given),
// Maildir++ subfolders (".Work.Projects") and directory-layout subfolders (Work/Projects/cur)
// become mailboxes below it. Flags come from each file name's ":2," info (RFC-less but
// universal: D draft, F flagged, P passed, R replied, S seen, T trashed; a–z are Dovecot
// keywords named in dovecot-keywords); the internal date is the file's modification time, which
// Dovecot and Courier keep as the received date.
type maildirSource struct {
	files []maildirFile
	next  int
}

func openMaildir(root, target string) (*maildirSource, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("import: %s is not a Maildir directory (import mbox?)", root)
	}
	src := &maildirSource{}
	base := target
	if base == "" {
		base = "INBOX"
	}
	if err := src.walk(root, base, target, true); err != nil {
		return nil, err
	}
	if len(src.files) == 0 {
		return nil, fmt.Errorf("import: no messages under %s (want a Maildir with cur/ and new/)", root)
	}
	return src, nil
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// walk adds dir's messages as mailbox name, then its subfolders. parent is the name subfolders
// go under ("" at the top without a MAILBOX argument: they become top-level mailboxes).
func (s *maildirSource) walk(dir, name, parent string, top bool) error {
	if isMaildir(dir) {
		if err := s.addFolder(dir, name); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	join := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + "/" + b
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || n == "cur" || n == "new" || n == "tmp" || n == "." || n == ".." {
			continue
		}
		sub := filepath.Join(dir, n)
		switch {
		case top && strings.HasPrefix(n, ".") && len(n) > 1 && isMaildir(sub):
			// Maildir++: ".Work.Projects" is Work/Projects, names in modified UTF-7.
			parts := strings.Split(n[1:], ".")
			for i, p := range parts {
				parts[i] = decodeMUTF7(p)
			}
			if err := s.addFolder(sub, join(parent, strings.Join(parts, "/"))); err != nil {
				return err
			}
		case !strings.HasPrefix(n, "."):
			if err := s.walk(sub, join(parent, decodeMUTF7(n)), join(parent, decodeMUTF7(n)), false); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *maildirSource) addFolder(dir, mailbox string) error {
	keywords := dovecotKeywords(dir)
	var files []maildirFile
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("import: %w", err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			var flags []string
			if sub == "cur" {
				flags = maildirFlags(e.Name(), keywords)
			}
			files = append(files, maildirFile{path: filepath.Join(dir, sub, e.Name()), mailbox: mailbox, flags: flags})
		}
	}
	// Unique names begin with the delivery time: sorting keeps the order mail arrived in.
	sort.Slice(files, func(i, j int) bool { return filepath.Base(files[i].path) < filepath.Base(files[j].path) })
	s.files = append(s.files, files...)
	return nil
}

// maildirFlags reads the info part of a file name: "…:2,FRS" (or "!2," where ":" is not allowed).
func maildirFlags(name string, keywords map[byte]string) []string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		i = strings.LastIndex(name, "!2,")
	}
	if i < 0 {
		return nil
	}
	var flags []string
	for _, c := range []byte(name[i+3:]) {
		switch c {
		case 'D':
			flags = append(flags, `\Draft`)
		case 'F':
			flags = append(flags, `\Flagged`)
		case 'P':
			flags = append(flags, `$Forwarded`)
		case 'R':
			flags = append(flags, `\Answered`)
		case 'S':
			flags = append(flags, `\Seen`)
		case 'T':
			flags = append(flags, `\Deleted`)
		default:
			if kw, ok := keywords[c]; ok {
				flags = append(flags, kw)
			}
		}
	}
	return flags
}

// dovecotKeywords reads dovecot-keywords: "0 $Label1" maps letter a to $Label1, 1 to b, ….
func dovecotKeywords(dir string) map[byte]string {
	b, err := os.ReadFile(filepath.Join(dir, "dovecot-keywords"))
	if err != nil {
		return nil
	}
	out := map[byte]string{}
	for _, line := range strings.Split(string(b), "\n") {
		num, kw, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 0 || n >= 26 || kw == "" || strings.ContainsAny(kw, " (){%*\"\\]") {
			continue
		}
		out[byte('a'+n)] = kw
	}
	return out
}

func (s *maildirSource) Total() int64 { return int64(len(s.files)) }
func (s *maildirSource) Done() int64  { return int64(s.next) }
func (s *maildirSource) Close() error { return nil }

func (s *maildirSource) Next() (importMessage, error) {
	if s.next >= len(s.files) {
		return importMessage{}, io.EOF
	}
	f := s.files[s.next]
	s.next++
	data, err := os.ReadFile(f.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) { // moved by a server still running on it
			return s.Next()
		}
		return importMessage{}, fmt.Errorf("import: %w", err)
	}
	im := importMessage{Mailboxes: []string{f.mailbox}, Data: crlf(data), Flags: f.flags}
	if fi, err := os.Stat(f.path); err == nil {
		im.Date = fi.ModTime().Unix()
	}
	return im, nil
}

// crlf turns bare LF line endings into CRLF (Maildir files are stored with LF).
func crlf(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/40)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	return out
}

// decodeMUTF7 decodes an IMAP modified UTF-7 name (RFC 3501 §5.1.3), which Maildir++ and
// Dovecot use for folder names on disk. A name that is not valid modified UTF-7 is kept as is.
func decodeMUTF7(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '&' {
			out.WriteByte(s[i])
			continue
		}
		end := strings.IndexByte(s[i:], '-')
		if end < 0 {
			return s
		}
		chunk := s[i+1 : i+end]
		i += end
		if chunk == "" {
			out.WriteByte('&')
			continue
		}
		var bits, nbits uint32
		var units []uint16
		for _, c := range []byte(chunk) {
			v := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,", c)
			if v < 0 {
				return s
			}
			bits = bits<<6 | uint32(v)
			nbits += 6
			if nbits >= 16 {
				nbits -= 16
				units = append(units, uint16(bits>>nbits))
				bits &= 1<<nbits - 1
			}
		}
		out.WriteString(string(utf16.Decode(units)))
	}
	return out.String()
}
