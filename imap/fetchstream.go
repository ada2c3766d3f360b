package imap

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailstead/message"
)

// streamed is a BODY[] or BODY[TEXT] section (with or without <partial>) read straight from the
// store's chunks while it is written, so a 45 MB message is never loaded whole (the chunk being
// read and a copy buffer are all that is held).
type streamed struct {
	src      io.ReaderAt
	off, len int64
}

// streamable reports whether a section is cut from the stored bytes as they are, without MIME
// parsing: the whole message or its text, at any partial range.
func streamable(sec *imap.FetchItemBodySection) bool {
	return len(sec.Part) == 0 && len(sec.HeaderFields) == 0 && len(sec.HeaderFieldsNot) == 0 &&
		(sec.Specifier == imap.PartSpecifierNone || sec.Specifier == imap.PartSpecifierText)
}

// streamSection finds the byte range of sec in msg (size bytes, ReadAt) and checks it holds no
// NUL, which an IMAP literal cannot carry (RFC 9051 §4.3; BINARY[] may, RFC 3516 §4.2). The
// check reads the range once more, chunk by chunk: memory stays bounded either way.
func streamSection(msg message.Source, sec *imap.FetchItemBodySection) (streamed, error) {
	start, end := int64(0), msg.Size()
	if sec.Specifier == imap.PartSpecifierText {
		head, err := message.ReadHeaderAt(msg, msg.Size())
		if err != nil {
			return streamed{}, err
		}
		start = int64(len(head))
	}
	if p := sec.Partial; p != nil {
		start = min(start+p.Offset, end)
		if p.Size >= 0 {
			end = min(end, start+p.Size)
		}
	}
	st := streamed{src: msg, off: start, len: end - start}
	nul, err := hasNUL(io.NewSectionReader(msg, st.off, st.len))
	if err != nil {
		return streamed{}, err
	}
	if nul {
		return streamed{}, errNULInLiteral
	}
	return st, nil
}

var errNULInLiteral = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
	Text: "This section contains NUL bytes; fetch it with BINARY[]"}

func hasNUL(r io.Reader) (bool, error) {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if bytes.IndexByte(buf[:n], 0) >= 0 {
			return true, nil
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read section: %w", err)
		}
	}
}

// write copies the section into the response literal. A store error here cuts the response
// short (the client sees the connection end, never a wrong literal).
func (st streamed) write(wc io.WriteCloser) error {
	_, err := io.Copy(wc, io.NewSectionReader(st.src, st.off, st.len))
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// partSection, binarySection and binarySectionSize hand go-imap's MIME walker the stored message
// as a stream (chunk by chunk through a 4 KiB bufio.Reader): the walker stops once the part is
// read, so memory is bounded by the section answered, not the message (a small BODY[1] of a
// 20 MiB message reads the first chunk or two). The walker drops read errors, so they are kept
// here and a store failure is never answered as an empty section.
func partSection(msg message.Source, sec *imap.FetchItemBodySection) ([]byte, error) {
	r := stream(msg)
	b := imapserver.ExtractBodySection(r, sec)
	return b, r.err
}

func binarySection(msg message.Source, sec *imap.FetchItemBinarySection) ([]byte, error) {
	r := stream(msg)
	b := imapserver.ExtractBinarySection(r, sec)
	return b, r.err
}

func binarySectionSize(msg message.Source, sec *imap.FetchItemBinarySectionSize) (uint32, error) {
	r := stream(msg)
	n := imapserver.ExtractBinarySectionSize(r, sec)
	return n, r.err
}

// errReader reads msg in order and remembers the first error that is not EOF.
type errReader struct {
	r   io.Reader
	err error
}

func stream(msg message.Source) *errReader {
	return &errReader{r: io.NewSectionReader(msg, 0, msg.Size())}
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = fmt.Errorf("read message: %w", err)
	}
	return n, err
}
