package pop3

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// referenceCopy is the obvious, slow statement of what copyMessage does:
// lines end at LF, CRLF or a CR at the very end; each line goes out with
// CRLF, dot-stuffed; TOP keeps the header, the blank line and bodyLines
// lines.
func referenceCopy(raw string, bodyLines int) (out string, n int64) {
	norm := strings.ReplaceAll(raw, "\r\n", "\n")
	if strings.HasSuffix(norm, "\r") {
		norm = strings.TrimSuffix(norm, "\r") + "\n"
	}
	lines := strings.Split(norm, "\n")
	terminated := lines[len(lines)-1] == ""
	if terminated {
		lines = lines[:len(lines)-1]
	}
	var b strings.Builder
	inHeader := true
	for i, l := range lines {
		if !inHeader && bodyLines >= 0 {
			if bodyLines == 0 {
				break
			}
			bodyLines--
		}
		if inHeader && l == "" {
			inHeader = false
		}
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(l + "\r\n")
		n += int64(len(l))
		if terminated || i < len(lines)-1 {
			n += 2
		}
	}
	return b.String(), n
}

func runCopy(t testing.TB, raw string, bodyLines, bufSize int) (string, int64) {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	n, err := copyMessageBuf(w, strings.NewReader(raw), bodyLines, bufSize)
	if err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return out.String(), n
}

func TestCopyMessage(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name, raw string
		bodyLines int
		want      string
		wantN     int64 // -1: not checked
	}{
		{"plain", "a: b\r\n\r\nbody\r\n", -1, "a: b\r\n\r\nbody\r\n", 14},
		{"dot line", "a: b\r\n\r\n.\r\n", -1, "a: b\r\n\r\n..\r\n", 11},
		{"dots", "a: b\r\n\r\n..x\r\n.y\r\nz.\r\n", -1, "a: b\r\n\r\n...x\r\n..y\r\nz.\r\n", 21},
		{"empty", "", -1, "", 0},
		{"no final CRLF", "a: b\r\n\r\nend", -1, "a: b\r\n\r\nend\r\n", 11},
		{"bare LF", "a: b\n\n.x\n", -1, "a: b\r\n\r\n..x\r\n", 12},
		{"bare CR kept inside a line", "a: b\r\n\r\nx\ry\r\n", -1, "a: b\r\n\r\nx\ry\r\n", 13},
		{"top 0", "a: b\r\nc: d\r\n\r\n1\r\n2\r\n", 0, "a: b\r\nc: d\r\n\r\n", -1},
		{"top 1", "a: b\r\n\r\n.1\r\n2\r\n", 1, "a: b\r\n\r\n..1\r\n", -1},
		{"top past end", "a: b\r\n\r\n1\r\n", 5, "a: b\r\n\r\n1\r\n", -1},
		{"top header only", "a: b\r\nc: d", 0, "a: b\r\nc: d\r\n", -1},
		{"long dotted line", "." + long + "\r\n" + long + "." + long + "\r\n", -1, ".." + long + "\r\n" + long + "." + long + "\r\n", 306},
	}
	for _, tt := range tests {
		for _, bufSize := range []int{16, 17, 64 << 10} {
			got, n := runCopy(t, tt.raw, tt.bodyLines, bufSize)
			if got != tt.want {
				t.Errorf("%s (buffer %d): got %q, want %q", tt.name, bufSize, got, tt.want)
			}
			if tt.wantN >= 0 && n != tt.wantN {
				t.Errorf("%s (buffer %d): counted %d octets, want %d", tt.name, bufSize, n, tt.wantN)
			}
			ref, refN := referenceCopy(tt.raw, tt.bodyLines)
			if ref != tt.want || (tt.wantN >= 0 && refN != tt.wantN) {
				t.Errorf("%s: reference disagrees: %q %d", tt.name, ref, refN)
			}
		}
	}
}

// TestCopyMessageCRAtBufferEdge: a CRLF split across two buffer fills is
// still one line ending, and the dot after it is still stuffed.
func TestCopyMessageCRAtBufferEdge(t *testing.T) {
	for size := 16; size < 40; size++ {
		for pad := 0; pad < 40; pad++ {
			raw := strings.Repeat("y", pad) + "\r\n.z\r\n"
			got, n := runCopy(t, raw, -1, size)
			want := strings.Repeat("y", pad) + "\r\n..z\r\n"
			if got != want || n != int64(len(raw)) {
				t.Fatalf("buffer %d pad %d: got %q (%d octets)", size, pad, got, n)
			}
		}
	}
}

func FuzzCopyMessage(f *testing.F) {
	f.Add("a: b\r\n\r\n.\r\n..\r\nx", 2, 16)
	f.Add("\r\r\n.\n\r", -1, 17)
	f.Add(".", 0, 16)
	f.Fuzz(func(t *testing.T, raw string, bodyLines, bufSize int) {
		bufSize = 16 + (bufSize&0xffff)%64
		if bodyLines < -1 {
			bodyLines = -1
		}
		got, n := runCopy(t, raw, bodyLines, bufSize)
		want, wantN := referenceCopy(raw, bodyLines)
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if bodyLines < 0 && n != wantN {
			t.Fatalf("counted %d octets, want %d", n, wantN)
		}
		// The output never contains a line that is only a dot.
		if strings.HasPrefix(got, ".\r\n") || strings.Contains(got, "\r\n.\r\n") {
			t.Fatalf("unstuffed terminator in %q", got)
		}
	})
}

// BenchmarkCopyMessage measures RETR's copy loop on a 1 MiB message of
// 78-octet lines, a tenth of them starting with a dot.
func BenchmarkCopyMessage(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("Subject: bench\r\n\r\n")
	for i := 0; sb.Len() < 1<<20; i++ {
		if i%10 == 0 {
			sb.WriteString(".")
		}
		sb.WriteString(strings.Repeat("z", 76) + "\r\n")
	}
	raw := sb.String()
	w := bufio.NewWriter(io.Discard)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		if _, err := copyMessage(w, strings.NewReader(raw), -1); err != nil {
			b.Fatal(err)
		}
	}
}
