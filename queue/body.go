package queue

import (
	"context"
	"errors"
	"fmt"
	"io"

	"mailstead/message"
)

// maxFullReturn bounds the message a RET=FULL bounce carries whole (RFC 3461 §4.3): a report
// is composed in memory and signed, so a larger original is returned as its header with a note
// saying why, rather than held whole.
const maxFullReturn = 10 << 20

// body is a queued message's text as the store keeps it, in chunks. It holds no bytes: each
// use opens a fresh reader from the first byte, so every attempt, target and reused session
// sends the whole message, and no layer needs it whole in memory.
type body struct {
	size int64
	open func(ctx context.Context) (io.ReaderAt, error)
	// eightBit is has8bit of the body, scanned once per round when a session first asks.
	eightBit, scanned bool
	header            []byte // read by keepHeader, for a report written after the body is freed
}

// openBody returns the body of the blob a group refers to.
func (q *Queue) openBody(ctx context.Context, blobID int64) (*body, error) {
	r, err := q.st.QueueBody(ctx, blobID)
	if err != nil {
		return nil, err
	}
	return &body{size: r.Size(), open: func(ctx context.Context) (io.ReaderAt, error) {
		return q.st.QueueBody(ctx, blobID)
	}}, nil
}

// reader returns a reader of the whole body from its first byte.
func (b *body) reader(ctx context.Context) (io.Reader, error) {
	r, err := b.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the queued message: %w", err)
	}
	return io.NewSectionReader(r, 0, b.size), nil
}

// has8bit reports whether any byte of the body is 8-bit (RFC 6152), reading it in chunks.
func (b *body) has8bit(ctx context.Context) (bool, error) {
	if b.scanned {
		return b.eightBit, nil
	}
	r, err := b.reader(ctx)
	if err != nil {
		return false, err
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if has8bit(buf[:n]) {
			b.eightBit, b.scanned = true, true
			return true, nil
		}
		if errors.Is(err, io.EOF) {
			b.eightBit, b.scanned = false, true
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading the queued message: %w", err)
		}
	}
}

// keepHeader reads the header now, for a report composed once the entries, and so perhaps the
// body, are gone from the store.
func (b *body) keepHeader(ctx context.Context) error {
	o, err := b.forReport(ctx, false)
	if err != nil {
		return err
	}
	b.header = o.header
	return nil
}

// original is what a report needs of the message it is about: the header, and the whole text
// when RET=FULL asks for it and it is small enough to carry.
type original struct {
	header []byte
	full   []byte // nil unless the report returns the message
	size   int64
}

// forReport reads of b only what a report needs: the header, and the whole message when full
// is asked and the message is at most maxFullReturn bytes.
func (b *body) forReport(ctx context.Context, full bool) (original, error) {
	o := original{size: b.size}
	if b.header != nil && !full {
		o.header = b.header
		return o, nil
	}
	r, err := b.open(ctx)
	if err != nil {
		return o, fmt.Errorf("reading the queued message: %w", err)
	}
	if full && b.size <= maxFullReturn {
		o.full = make([]byte, b.size)
		if _, err := r.ReadAt(o.full, 0); err != nil && !(errors.Is(err, io.EOF)) {
			return original{size: b.size}, fmt.Errorf("reading the queued message: %w", err)
		}
		o.header = o.full
		return o, nil
	}
	if o.header, err = message.ReadHeaderAt(r, b.size); err != nil {
		return original{size: b.size}, fmt.Errorf("reading the queued message: %w", err)
	}
	return o, nil
}
