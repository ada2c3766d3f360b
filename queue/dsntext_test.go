package queue

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

func TestEscapeText(t *testing.T) {
	tests := []struct {
		name, in    string
		max         int
		text, ascii string // escapeText without and with asciiOnly
	}{
		{"plain", "550 5.1.1 no such user", 900, "550 5.1.1 no such user", "550 5.1.1 no such user"},
		{"NUL and ESC", "550 a\x00b\x1b[31mred", 900, `550 a\x00b\x1B[31mred`, `550 a\x00b\x1B[31mred`},
		{"CR and LF end no line", "550 one\r\nSubject: injected\rtwo", 900, "550 one  Subject: injected two", "550 one  Subject: injected two"},
		{"DEL and C1", "a\x7fb\u0085c", 900, `a\x7Fb\x85c`, `a\x7Fb\x85c`},
		{"invalid UTF-8", "a\xffb\xc3", 900, `a\xFFb\xC3`, `a\xFFb\xC3`},
		{"non-ASCII", "Grüße", 900, "Grüße", `Gr\x{00FC}\x{00DF}e`},
		{"cut on a character", "ééé", 5, "éé", ""},
		{"cut before an escape", "ab\x00", 4, "ab", "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escapeText(tt.in, tt.max, false); got != tt.text {
				t.Errorf("text: %q, want %q", got, tt.text)
			}
			if got := escapeText(tt.in, tt.max, true); got != tt.ascii {
				t.Errorf("ascii: %q, want %q", got, tt.ascii)
			}
		})
	}
}

func TestSubjectField(t *testing.T) {
	long := strings.Repeat("lunch plans ", 400)
	word := strings.Repeat("x", 2000)
	tests := []struct {
		name, subject string
		wantStart     string
	}{
		{"short", "hello", "Subject: Undeliverable: hello\r\n"},
		{"long with spaces", long, "Subject: Undeliverable: lunch plans"},
		{"one long word", word, "Subject: Undeliverable:\r\n xxxx"},
		{"control characters", "hi\x1b[2J\x00", `Subject: Undeliverable: hi\x1B[2J\x00`},
		{"non-ASCII", "Grüße aus Köln", "Subject: Undeliverable: =?utf-8?q?Gr=C3=BC=C3=9Fe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := subjectField("Undeliverable: ", tt.subject)
			if !strings.HasPrefix(f, tt.wantStart) || !strings.HasSuffix(f, "\r\n") {
				t.Fatalf("field = %q", f)
			}
			lines := strings.Split(strings.TrimSuffix(f, "\r\n"), "\r\n")
			for i, l := range lines {
				if len(l) > 998 {
					t.Errorf("line %d is %d characters (RFC 5322 §2.1.1 allows 998)", i, len(l))
				}
				if len(l) > 78 && strings.Contains(strings.TrimSpace(l), " ") {
					t.Errorf("line %d is %d characters though it could be folded: %q", i, len(l), l)
				}
				if i > 0 && !strings.HasPrefix(l, " ") {
					t.Errorf("continuation line %d does not start with a space", i)
				}
			}
			m, err := mail.ReadMessage(strings.NewReader(f + "\r\n"))
			if err != nil {
				t.Fatalf("not a header: %v", err)
			}
			if got := m.Header.Get("Subject"); len(got) > len("Undeliverable: ")+maxSubjectBytes*4 {
				t.Errorf("subject of %d bytes is not bounded", len(got))
			}
		})
	}
}

// A remote server's reply with NUL, ESC and CR, for a message with a 3,000-character subject:
// the bounce quotes the reply escaped, folds its Subject, and no line passes 998 characters.
func TestBounceEscapesRemoteText(t *testing.T) {
	e := newEnv(t, "127.0.0.31")
	e.zone.Add("b.test. 300 IN MX 10 mx.b.test.", "mx.b.test. 300 IN A 127.0.0.31")
	far := startFarSide(t, "127.0.0.31", 25+e.offset, nil)
	far.rcptErr = func(string) error {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no\x00 such\x1b[2J user\rX-Injected: yes"}
	}
	e.start()
	// The original's Subject is 3,000 characters, folded as RFC 5322 §2.2.3 asks of it.
	msg := strings.Replace(testMsg, "Subject: hello", "Subject:"+strings.Repeat(" very long subject\n", 170)+" end", 1)
	e.submit("alice@a.test", msg, "bob@b.test")
	e.waitFor("a bounce in alice's INBOX", func() bool { return len(e.inbox()) == 1 })
	dsn := e.inbox()[0]
	body := bytes.ReplaceAll(dsn, []byte("\r\n"), []byte("\n"))
	for i, c := range body {
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
			t.Fatalf("bounce holds control byte %#x at %d:\n%s", c, i, dsn)
		}
	}
	for i, l := range bytes.Split(body, []byte("\n")) {
		if len(l) > 998 {
			t.Errorf("line %d has %d characters", i, len(l))
		}
	}
	for _, want := range []string{`Diagnostic-Code: smtp; 550 5.1.1 no\x00 such\x1B[2J user X-Injected: yes`,
		`host mx.b.test said: 550 5.1.1 no\x00 such\x1B[2J user X-Injected: yes`, "Subject: Undeliverable: very long subject"} {
		if !bytes.Contains(dsn, []byte(want)) {
			t.Errorf("bounce lacks %q", want)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(dsn))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("X-Injected") != "" {
		t.Error("the remote reply started a header field of its own")
	}
	if t.Failed() {
		t.Logf("bounce:\n%s", dsn)
	}
}
