package pop3

import (
	"bufio"
	"errors"
	"io"
)

// copyMessage sends a stored message as a POP3 multi-line response body
// (RFC 1939 §3): every line ending becomes CRLF, and a line that begins with
// "." gets one more "." in front ("byte-stuffing"). The caller writes the
// status line before and the terminating ".\r\n" after.
//
// bodyLines < 0 copies the whole message (RETR). bodyLines >= 0 copies the
// header, the blank line that ends it and then at most bodyLines lines of the
// body (TOP, RFC 1939 §7), and stops reading there.
//
// A message whose last line has no line ending gets a CRLF so that the
// terminating dot stands on a line of its own. The returned count is the
// number of message octets sent before stuffing, without that added CRLF: for
// RETR of a CRLF-normalised message it equals Message.Size.
func copyMessage(dst *bufio.Writer, src io.Reader, bodyLines int) (int64, error) {
	return copyMessageBuf(dst, src, bodyLines, 64<<10)
}

// copyMessageBuf is copyMessage reading through a buffer of bufSize octets;
// tests make it small so lines cross buffer boundaries.
func copyMessageBuf(dst *bufio.Writer, src io.Reader, bodyLines, bufSize int) (int64, error) {
	br := bufio.NewReaderSize(src, bufSize)
	var (
		n         int64
		lineLen   int // octets of the current line already written
		inHeader  = true
		pendingCR bool // a chunk ended in CR; the next chunk decides whether it ends a line
	)
	emit := func(b []byte) {
		if len(b) == 0 {
			return
		}
		if lineLen == 0 && b[0] == '.' {
			dst.WriteByte('.') // byte-stuffing, RFC 1939 §3
		}
		dst.Write(b)
		lineLen += len(b)
		n += int64(len(b))
	}
	// endLine writes CRLF and reports whether more lines are wanted.
	endLine := func() bool {
		dst.WriteString("\r\n")
		n += 2
		switch {
		case inHeader:
			if lineLen == 0 {
				inHeader = false // the empty line between header and body
			}
		case bodyLines > 0:
			bodyLines--
		}
		lineLen = 0
		return inHeader || bodyLines != 0
	}
	for {
		chunk, err := br.ReadSlice('\n')
		if pendingCR {
			pendingCR = false
			if len(chunk) > 0 && chunk[0] == '\n' {
				chunk = chunk[1:]
				if !endLine() {
					return n, nil
				}
			} else {
				emit([]byte{'\r'}) // a bare CR inside a line stays as it is
			}
		}
		if len(chunk) > 0 {
			if chunk[len(chunk)-1] == '\n' {
				line := chunk[:len(chunk)-1]
				if len(line) > 0 && line[len(line)-1] == '\r' {
					line = line[:len(line)-1]
				}
				emit(line)
				if !endLine() {
					return n, nil
				}
			} else {
				if chunk[len(chunk)-1] == '\r' {
					pendingCR = true
					chunk = chunk[:len(chunk)-1]
				}
				emit(chunk)
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if pendingCR {
				endLine()
			} else if lineLen > 0 {
				dst.WriteString("\r\n") // not part of the message; see above
			}
			return n, nil
		default:
			return n, err
		}
	}
}
