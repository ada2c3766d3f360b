package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// bigMultipart is a 20 MiB message: a short text part and a base64 attachment. It returns the
// message and the exact bytes of BODY[1] and BODY[2] (RFC 9051 §6.4.5: a part's body without
// its MIME header).
func bigMultipart() (msg, part1, part2 []byte) {
	raw := make([]byte, 15<<20)
	for i := range raw {
		raw[i] = byte(i*7 + i>>11)
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var b64 strings.Builder
	for len(enc) > 76 {
		b64.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b64.WriteString(enc)
	part1 = []byte("Hello, the report is attached.\r\n")
	part2 = []byte(b64.String())
	var m bytes.Buffer
	m.WriteString("From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: big report\r\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <big@example.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n" +
		"--b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	m.Write(part1)
	m.WriteString("\r\n--b0undary\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"report.bin\"\r\n\r\n")
	m.Write(part2)
	m.WriteString("\r\n--b0undary--\r\n")
	return m.Bytes(), part1, part2
}

func appendBig(t *testing.T, e *testEnv) (msg, part1, part2 []byte) {
	t.Helper()
	msg, part1, part2 = bigMultipart()
	if _, _, err := e.st.Append(context.Background(), e.mailboxID(t, "INBOX"), msg, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return msg, part1, part2
}

// allocated returns the bytes allocated (in this process: server and client) while fn ran.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestFetchPartOfLargeMessage fetches the parts and a header field of a 20 MiB message: each
// comes back byte for byte, and a small part or a header field is answered without reading the
// message into memory (before, every one of these allocated the whole 20 MiB at least once).
func TestFetchPartOfLargeMessage(t *testing.T) {
	e := newEnv(t, nil)
	msg, part1, part2 := appendBig(t, e)
	c := e.login(t, alice, alicePW, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fetch := func(sec *imap.FetchItemBodySection, bin *imap.FetchItemBinarySection) []byte {
		t.Helper()
		opts := &imap.FetchOptions{}
		if sec != nil {
			opts.BodySection = []*imap.FetchItemBodySection{sec}
		}
		if bin != nil {
			opts.BinarySection = []*imap.FetchItemBinarySection{bin}
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1), opts).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("fetch: %v (%d messages)", err, len(msgs))
		}
		if sec != nil {
			return msgs[0].FindBodySection(sec)
		}
		return msgs[0].FindBinarySection(bin)
	}
	small := []struct {
		name string
		sec  *imap.FetchItemBodySection
		bin  *imap.FetchItemBinarySection
		want string
	}{
		{"BODY[1]", &imap.FetchItemBodySection{Part: []int{1}, Peek: true}, nil, string(part1)},
		{"BODY[1.MIME]", &imap.FetchItemBodySection{Part: []int{1}, Specifier: imap.PartSpecifierMIME, Peek: true}, nil,
			"Content-Type: text/plain; charset=utf-8\r\n\r\n"},
		{"BODY[HEADER.FIELDS (SUBJECT)]", &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader,
			HeaderFields: []string{"Subject"}, Peek: true}, nil, "Subject: big report\r\n\r\n"},
		{"BINARY[1]", nil, &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}, string(part1)},
	}
	for _, tc := range small {
		var got []byte
		n := allocated(func() { got = fetch(tc.sec, tc.bin) })
		if string(got) != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, got, tc.want)
		}
		t.Logf("%s allocated %d bytes", tc.name, n)
		if n > uint64(len(msg))/8 {
			t.Errorf("%s allocated %d bytes for a %d-byte message; want well below the message size", tc.name, n, len(msg))
		}
	}
	if got := fetch(&imap.FetchItemBodySection{Part: []int{2}, Peek: true}, nil); !bytes.Equal(got, part2) {
		t.Errorf("BODY[2]: got %d bytes, want the %d-byte attachment byte for byte", len(got), len(part2))
	}
}

const imaplibPartsScript = `
import imaplib, ssl, sys
host, port, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
M = imaplib.IMAP4(host, port)
M.starttls(ssl_context=ctx)
def ok(r):
    typ, data = r
    assert typ == 'OK', (typ, data)
    return data
ok(M.login('alice@example.test', 'alice-secret'))
ok(M.select('INBOX', readonly=True))
for sec, name in [('BODY.PEEK[1]', 'part1'), ('BODY.PEEK[2]', 'part2'), ('BODY.PEEK[HEADER.FIELDS (SUBJECT)]', 'subject')]:
    data = ok(M.fetch('1', '(' + sec + ')'))
    want = open(d + '/' + name, 'rb').read()
    assert data[0][1] == want, (sec, len(data[0][1]), len(want))
M.logout()
print('parts complete')
`

// TestInteropImaplibLargeParts has Python's imaplib fetch the parts of a 20 MiB message.
func TestInteropImaplibLargeParts(t *testing.T) {
	interop(t, "/usr/bin/python3")
	e := newEnv(t, nil)
	_, part1, part2 := appendBig(t, e)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"part1": part1, "part2": part2, "subject": []byte("Subject: big report\r\n\r\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := strings.Cut(e.plain, ":")
	out, err := exec.Command("/usr/bin/python3", "-c", imaplibPartsScript, host, port, dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "parts complete") {
		t.Fatalf("imaplib: %v\n%s\nserver log:\n%s", err, out, e.logs.String())
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// PREVIEW of a message whose text comes before a large attachment reads the text and stops: the
// attachment is never read.
func TestPreviewStopsAfterTheText(t *testing.T) {
	msg, part1, _ := bigMultipart()
	r := &countingReader{r: bytes.NewReader(msg)}
	got := preview(r)
	if want := strings.Join(strings.Fields(string(part1)), " "); !strings.HasPrefix(want, got) || got == "" {
		t.Errorf("preview = %q, want the start of %q", got, want)
	}
	if r.n > len(msg)/8 {
		t.Errorf("preview read %d of the message's %d bytes; want only up to its text part", r.n, len(msg))
	}
}
