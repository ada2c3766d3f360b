package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
)

// chunkSize is the size of one stored piece of a large body (schema 12): large enough that a
// 50 MB message is 200 rows, small enough that a reader or writer holds one at a time.
const chunkSize = 256 << 10

// insertBlob stores a body of size bytes read from r: inline when it fits in one chunk, else in
// chunks. A body shorter or longer than size is refused, so a truncated spool file is never
// stored as a shorter message.
func (t *writeTx) insertBlob(r io.ReaderAt, size int64) (int64, error) {
	if size <= chunkSize {
		data := make([]byte, size)
		if err := readFullAt(r, data, 0, size); err != nil {
			return 0, err
		}
		res, err := t.Exec("INSERT INTO blobs (size, data) VALUES (?, ?)", size, data)
		if err != nil {
			return 0, fmt.Errorf("store body: %w", err)
		}
		return res.LastInsertId()
	}
	res, err := t.Exec("INSERT INTO blobs (size, data) VALUES (?, ?)", size, []byte{})
	if err != nil {
		return 0, fmt.Errorf("store body: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, chunkSize)
	for seq, off := 0, int64(0); off < size; seq, off = seq+1, off+chunkSize {
		chunk := buf[:min(chunkSize, size-off)]
		if err := readFullAt(r, chunk, off, size); err != nil {
			return 0, err
		}
		if _, err := t.Exec("INSERT INTO blob_chunks (blob_id, seq, data) VALUES (?, ?, ?)", id, seq, chunk); err != nil {
			return 0, fmt.Errorf("store body chunk %d: %w", seq, err)
		}
	}
	return id, nil
}

// readFullAt fills p from r at off; a body that ends early, or goes on past size, is an error.
func readFullAt(r io.ReaderAt, p []byte, off, size int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("read message body at %d: %w", off, err)
	}
	if off+int64(n) == size {
		var one [1]byte
		if m, _ := r.ReadAt(one[:], size); m > 0 {
			return fmt.Errorf("message body longer than its size %d", size)
		}
	}
	return nil
}

// MessageReader reads one stored message (its prefix, then its body) through ReadAt, one chunk
// at a time, so that FETCH BODY[], POP3 RETR and partial fetches of a large message never load
// it whole. It reads with its own queries; a message expunged meanwhile reads as ErrNotFound.
type MessageReader struct {
	s      *Store
	ctx    context.Context
	prefix []byte
	blob   int64
	size   int64  // of the body
	inline []byte // the body, when it is not chunked
	seq    int64  // chunk held in buf, -1 for none
	buf    []byte
}

// OpenMessage returns a reader of a message's full text (prefix and body).
func (s *Store) OpenMessage(ctx context.Context, messageID int64) (*MessageReader, error) {
	r := &MessageReader{s: s, ctx: ctx, seq: -1}
	// Inline bodies are at most one chunk: read them with the row. A chunked one has empty data.
	err := s.db.QueryRowContext(ctx, `SELECT m.prefix, m.blob_id, b.size, b.data FROM messages m
		JOIN blobs b ON b.id = m.blob_id WHERE m.id = ?`, messageID).Scan(&r.prefix, &r.blob, &r.size, &r.inline)
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", messageID, notFound(err))
	}
	if int64(len(r.inline)) == r.size {
		r.seq = -2 // inline: no chunks
	}
	return r, nil
}

// openBlob returns a reader of a body alone (queue entries have no prefix).
func (s *Store) openBlob(ctx context.Context, blobID int64) (*MessageReader, error) {
	r := &MessageReader{s: s, ctx: ctx, seq: -1, blob: blobID}
	err := s.db.QueryRowContext(ctx, "SELECT size, data FROM blobs WHERE id = ?", blobID).Scan(&r.size, &r.inline)
	if err != nil {
		return nil, fmt.Errorf("body %d: %w", blobID, notFound(err))
	}
	if int64(len(r.inline)) == r.size {
		r.seq = -2
	}
	return r, nil
}

// Size is the message's length in bytes (RFC822.SIZE).
func (r *MessageReader) Size() int64 { return int64(len(r.prefix)) + r.size }

// ReadAt reads the message at off.
func (r *MessageReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= r.Size() {
			return n, io.EOF
		}
		if pos < int64(len(r.prefix)) {
			n += copy(p[n:], r.prefix[pos:])
			continue
		}
		b := pos - int64(len(r.prefix))
		if r.seq == -2 {
			n += copy(p[n:], r.inline[b:])
			continue
		}
		seq := b / chunkSize
		if seq != r.seq {
			if err := r.load(seq); err != nil {
				return n, err
			}
		}
		n += copy(p[n:], r.buf[b-seq*chunkSize:])
	}
	return n, nil
}

func (r *MessageReader) load(seq int64) error {
	r.buf = r.buf[:0]
	err := r.s.db.QueryRowContext(r.ctx, "SELECT data FROM blob_chunks WHERE blob_id = ? AND seq = ?", r.blob, seq).Scan(&r.buf)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("body %d chunk %d: %w", r.blob, seq, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("body %d chunk %d: %w", r.blob, seq, err)
	}
	r.seq = seq
	return nil
}

// readAll reads a whole message or body into memory, for the callers that need it so (small
// messages, MIME part extraction).
func (r *MessageReader) readAll() ([]byte, error) {
	out := make([]byte, r.Size())
	if _, err := r.ReadAt(out, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return out, nil
}
