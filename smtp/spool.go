package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	gosmtp "github.com/emersion/go-smtp"

	"mailstead/message"
)

// Spool receives message data (DATA and BDAT) without holding large messages in memory: the
// first Threshold bytes stay in memory, the rest go to a 0600 file in the spool directory. Every
// message is normalised (message.Normalizer) and size-checked as it arrives, and counted against
// a server-wide budget of bytes in flight, so neither many parallel large messages nor one huge
// one can exhaust memory or disk.
type Spool struct {
	dir       string
	threshold int
	budget    *Budget
	// bufs holds *[]byte: copy buffers, and the memory of closed bodies, reused by the next
	// message instead of allocated and grown for each (the runtime empties a pool at GC, so an
	// idle server keeps none).
	bufs sync.Pool
}

// poolBytes is the size of the pooled buffers; a body that grew past it is not kept.
const poolBytes = 32 << 10

func (sp *Spool) buf() []byte {
	if p, ok := sp.bufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, poolBytes)
}

func (sp *Spool) putBuf(b []byte) {
	if cap(b) == poolBytes {
		sp.bufs.Put(&b)
	}
}

// spoolPrefix names spool files, so that start-up removes only ours.
const spoolPrefix = "msg-"

// DefaultSpoolThreshold is how much of a message stays in memory before it goes to a file.
const DefaultSpoolThreshold = 256 << 10

// DefaultInFlightBudget is the server-wide bound on bytes of messages being received.
const DefaultInFlightBudget = 1 << 30

// NewSpool returns a spool writing into dir (created 0700 if missing) and removes the files a
// previous run left there: they belong to transfers that were never acknowledged (kill -9, power
// loss), so nobody will ever read them. threshold <= 0 means DefaultSpoolThreshold; budget may be
// shared by several spools.
func NewSpool(dir string, threshold int, budget *Budget) (*Spool, error) {
	if threshold <= 0 {
		threshold = DefaultSpoolThreshold
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(dir, spoolPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("spool: remove stale %s: %w", f, err)
		}
	}
	return &Spool{dir: dir, threshold: threshold, budget: budget}, nil
}

// Budget bounds the bytes of messages in flight, across every session of every listener that
// shares it. A message takes its bytes as they arrive and gives them back when its transaction
// ends.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of max bytes; max <= 0 means no bound.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

func (b *Budget) take(n int64) bool {
	if b == nil || b.max <= 0 {
		return true
	}
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *Budget) give(n int64) {
	if b != nil && b.max > 0 {
		b.used.Add(-n)
	}
}

// InFlight is the number of bytes taken now.
func (b *Budget) InFlight() int64 { return b.used.Load() }

var (
	// errOverBudget: the server holds as many message bytes as it allows. 452 4.3.1 ("mail
	// system full", RFC 3463) rather than waiting: a waiting transfer would keep its connection
	// and its bytes, and the sender's queue retries later anyway.
	errOverBudget = reply(452, 4, 3, 1, "Too much mail in transit right now, try again later")
	errTooBig     = reply(552, 5, 3, 4, "Message too big")
	errSpool      = reply(452, 4, 3, 1, "Temporary local problem storing the message, try again later")
	errTransfer   = reply(451, 4, 4, 2, "Message transfer interrupted")
)

// Receive reads one message from r (go-smtp's DATA or BDAT reader), normalised, into memory or
// a spool file. maxSize bounds the normalised size (RFC 1870 SIZE). On error nothing is left
// behind and the error is the SMTP reply to give; go-smtp reads on to the end of the data before
// sending it, so the rest of a refused message is never taken for commands.
func (sp *Spool) Receive(r io.Reader, maxSize int64) (*Body, error) {
	b := &Body{sp: sp, max: maxSize, mem: sp.buf()}
	z := message.NewNormalizer(b)
	cp := sp.buf()
	_, err := io.CopyBuffer(z, r, cp[:cap(cp)])
	sp.putBuf(cp)
	if err == nil {
		err = z.Close()
	}
	if err == nil {
		err = b.finish()
	}
	if err != nil {
		b.Close()
		var se *gosmtp.SMTPError
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, errTransfer
	}
	return b, nil
}

// Body is a received message: in memory, or in a spool file once it grew past the threshold.
// It is read with ReadAt, as often as needed, until Close removes it.
type Body struct {
	sp    *Spool
	max   int64
	mem   []byte
	file  *os.File
	w     *bufio.Writer
	size  int64
	taken int64
}

// Write is the Normalizer's output side: it takes budget, checks the size and spills to a file.
func (b *Body) Write(p []byte) (int, error) {
	if b.max > 0 && b.size+int64(len(p)) > b.max {
		return 0, errTooBig
	}
	if !b.sp.budget.take(int64(len(p))) {
		return 0, errOverBudget
	}
	b.taken += int64(len(p))
	b.size += int64(len(p))
	if b.file == nil && len(b.mem)+len(p) <= b.sp.threshold {
		b.mem = append(b.mem, p...)
		return len(p), nil
	}
	if b.file == nil {
		f, err := os.CreateTemp(b.sp.dir, spoolPrefix+"*") // 0600, O_EXCL
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errSpool, err)
		}
		b.file = f
		b.w = bufio.NewWriterSize(f, 64<<10)
		if _, err := b.w.Write(b.mem); err != nil {
			return 0, fmt.Errorf("%w: %v", errSpool, err)
		}
		b.sp.putBuf(b.mem)
		b.mem = nil
	}
	if _, err := b.w.Write(p); err != nil {
		return 0, fmt.Errorf("%w: %v", errSpool, err)
	}
	return len(p), nil
}

// finish flushes the spool file so ReadAt sees every byte. No fsync: the file only has to
// outlive the transaction, and the 250 waits for the store's own commit.
func (b *Body) finish() error {
	if b.w != nil {
		if err := b.w.Flush(); err != nil {
			return fmt.Errorf("%w: %v", errSpool, err)
		}
	}
	return nil
}

// Size is the message's length in bytes, after normalisation.
func (b *Body) Size() int64 { return b.size }

// Spooled reports whether the message went to a file.
func (b *Body) Spooled() bool { return b.file != nil }

// ReadAt reads the message at off.
func (b *Body) ReadAt(p []byte, off int64) (int, error) {
	if b.file != nil {
		return b.file.ReadAt(p, off)
	}
	return bytes.NewReader(b.mem).ReadAt(p, off)
}

// Close removes the spool file, frees the memory and gives the budget back. It is safe to call
// more than once.
func (b *Body) Close() error {
	b.sp.budget.give(b.taken)
	b.taken = 0
	b.sp.putBuf(b.mem) // nothing reads it after Close: ReadAt and Reader see an empty body
	b.mem = nil
	if b.file == nil {
		return nil
	}
	name := b.file.Name()
	b.file.Close()
	b.file, b.w = nil, nil
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: remove %s: %w", name, err)
	}
	return nil
}
