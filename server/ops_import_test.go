package server

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMboxDate(t *testing.T) {
	cases := []struct {
		line string
		want time.Time
	}{
		{"From MAILER-DAEMON Fri Jul  8 12:08:34 2011", time.Date(2011, 7, 8, 12, 8, 34, 0, time.UTC)},
		{"From 1787781263116734566@xxx Sat Jan 20 14:43:28 +0000 2024", time.Date(2024, 1, 20, 14, 43, 28, 0, time.UTC)},
		{"From a@b.test Mon Mar  4 10:00:00 +0200 2019", time.Date(2019, 3, 4, 8, 0, 0, 0, time.UTC)},
		{"From a@b.test no date here", time.Time{}},
	}
	for _, c := range cases {
		if got := mboxDate(c.line); !got.Equal(c.want) {
			t.Errorf("mboxDate(%q) = %v, want %v", c.line, got, c.want)
		}
	}
}

func TestGmailLabels(t *testing.T) {
	cases := []struct {
		header       string
		boxes, flags []string
		unread       bool
	}{
		{"Inbox,Opened,Important", []string{"INBOX"}, nil, false},
		{"Sent,Opened", []string{"Sent"}, nil, false},
		{"Drafts", []string{"Drafts"}, []string{`\Draft`}, false},
		{"Spam,Unread", []string{"Junk"}, nil, true},
		{"Trash", []string{"Trash"}, nil, false},
		{"Chat,Opened", []string{"Chats"}, nil, false},
		{"Archived,Starred,Category Social", []string{"Archive"}, []string{`\Flagged`}, false},
		{`"a, b",Work/Sub,=?UTF-8?Q?Caf=C3=A9?=`, []string{"a, b", "Work/Sub", "Café"}, nil, false},
		{"", []string{"Archive"}, nil, false},
	}
	for _, c := range cases {
		boxes, flags, unread := gmailLabels(c.header)
		if !slices.Equal(boxes, c.boxes) || !slices.Equal(flags, c.flags) || unread != c.unread {
			t.Errorf("gmailLabels(%q) = %q %q %v, want %q %q %v", c.header, boxes, flags, unread, c.boxes, c.flags, c.unread)
		}
	}
}

func TestMaildirFlagsAndNames(t *testing.T) {
	kw := map[byte]string{'a': "$Label1", 'b': "Work"}
	cases := []struct {
		name string
		want []string
	}{
		{"1.M1.host:2,S", []string{`\Seen`}},
		{"1.M1.host:2,DFPRST", []string{`\Draft`, `\Flagged`, `$Forwarded`, `\Answered`, `\Seen`, `\Deleted`}},
		{"1.M1.host!2,Sab", []string{`\Seen`, "$Label1", "Work"}},
		{"1.M1.host:2,z", nil},
		{"1.M1.host", nil},
	}
	for _, c := range cases {
		if got := maildirFlags(c.name, kw); !slices.Equal(got, c.want) {
			t.Errorf("maildirFlags(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	for in, want := range map[string]string{
		"Entw&APw-rfe": "Entwürfe", "Sent": "Sent", "a&-b": "a&b", "&ZeVnLIqe-": "日本語", "broken&AB": "broken&AB",
	} {
		if got := decodeMUTF7(in); got != want {
			t.Errorf("decodeMUTF7(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"Work/Projects": "Work/Projects", "inbox": "INBOX", "a//b/": "a/b", "100%*": "100__", "/": "Imported",
		"tab\there": "tab_here",
	} {
		if got := importMailbox(in); got != want {
			t.Errorf("importMailbox(%q) = %q, want %q", in, got, want)
		}
	}
	if got := string(crlf([]byte("a\nb\r\nc"))); got != "a\r\nb\r\nc\r\n" {
		t.Errorf("crlf: %q", got)
	}
}

// TestMboxCRLFAndQuoting: a CRLF mbox reads like an LF one; mboxrd quoting loses one ">".
func TestMboxCRLFAndQuoting(t *testing.T) {
	text := "From a@b.test Thu Jan  1 00:00:00 2020\r\nSubject: one\r\n\r\n>From quoted\r\n>>From twice\r\n\r\n" +
		"From a@b.test Thu Jan  2 00:00:00 2020\r\nSubject: two\r\n\r\nlast line without newline"
	path := filepath.Join(t.TempDir(), "m.mbox")
	os.WriteFile(path, []byte(text), 0o600)
	src, err := openMbox(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got []string
	for {
		m, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Data))
	}
	want := []string{
		"Subject: one\r\n\r\nFrom quoted\r\n>From twice\r\n",
		"Subject: two\r\n\r\nlast line without newline\r\n",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("messages %q, want %q", got, want)
	}
	if src.Done() != src.Total() {
		t.Errorf("progress %d of %d at the end", src.Done(), src.Total())
	}
}

func TestImportRefusesWrongFormat(t *testing.T) {
	dir := t.TempDir()
	notMbox := filepath.Join(dir, "notes.txt")
	for _, text := range []string{"line one\nline two\nline three\nline four\nline five\n", "hello\nworld\nthird\n", "x"} {
		os.WriteFile(notMbox, []byte(text), 0o600)
		src, err := openMbox(notMbox, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Next(); err == nil || !strings.Contains(err.Error(), "not an mbox") {
			t.Errorf("reading %q as mbox: %v", text, err)
		}
		src.Close()
	}
	empty := filepath.Join(dir, "empty.mbox")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if src, err := openMbox(empty, ""); err != nil {
		t.Fatal(err)
	} else if _, err := src.Next(); err != io.EOF {
		t.Errorf("an empty mbox: %v, want no messages", err)
	}
	if _, err := openMbox(dir, ""); err == nil {
		t.Error("a directory opened as mbox")
	}
	if _, err := openMaildir(notMbox, ""); err == nil {
		t.Error("a file opened as Maildir")
	}
	if _, err := openMaildir(dir, ""); err == nil {
		t.Error("a directory without messages opened as Maildir")
	}
}

// FuzzMbox: any bytes read as an mbox end in messages or an error, never a panic, and every
// message is CRLF-terminated with no bare LF.
func FuzzMbox(f *testing.F) {
	f.Add([]byte("From a@b.test Thu Jan  1 00:00:00 2020\nSubject: x\n\nbody\n\nFrom a@b.test Thu Jan  1 00:00:00 2020\n\n"))
	f.Add([]byte("From x Sat Jan 20 14:43:28 +0000 2024\r\nX-Gmail-Labels: \"a,b\",=?x?=\r\n\r\n>From\r\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "f.mbox")
		os.WriteFile(path, data, 0o600)
		src, err := openMbox(path, "")
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		for i := 0; i < 10000; i++ {
			m, err := src.Next()
			if err != nil {
				return
			}
			if len(m.Data) > 0 && !strings.HasSuffix(string(m.Data), "\r\n") {
				t.Fatalf("message not CRLF-terminated: %q", m.Data)
			}
			if strings.Contains(strings.ReplaceAll(string(m.Data), "\r\n", ""), "\n") {
				t.Fatalf("bare LF in %q", m.Data)
			}
			if len(m.Mailboxes) == 0 {
				t.Fatal("message without a mailbox")
			}
		}
	})
}

func FuzzDecodeMUTF7(f *testing.F) {
	for _, s := range []string{"Entw&APw-rfe", "&-", "&ZeVnLIqe-", "&", "&A-", "a&&-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		decodeMUTF7(s)
	})
}
