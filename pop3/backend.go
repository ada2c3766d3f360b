package pop3

import (
	"context"
	"errors"
	"io"
	"net"

	"mailstead/scram"
)

// Errors a Backend or Maildrop returns to select the POP3 reply. Any other
// error is treated as a temporary server failure (-ERR [SYS/TEMP]).
var (
	// ErrAuthFailed: unknown user or wrong password (-ERR [AUTH], RFC 3206).
	ErrAuthFailed = errors.New("pop3: authentication failed")
	// ErrInUse: the maildrop is locked by another session (-ERR [IN-USE], RFC 2449 §8.1.1).
	ErrInUse = errors.New("pop3: maildrop in use")
	// ErrBusy: the server cannot check the password now (too many checks at once):
	// -ERR [SYS/TEMP], logged at debug only.
	ErrBusy = errors.New("pop3: server busy")
	// ErrGone: the message was expunged (for example over IMAP) after the
	// session took its snapshot. RETR and TOP answer -ERR; the session goes on.
	ErrGone = errors.New("pop3: message no longer exists")
)

// Backend authenticates users and opens their maildrop (the INBOX).
type Backend interface {
	// Login verifies user and password (user is an email address) and
	// returns the user's maildrop. It returns ErrAuthFailed for bad
	// credentials; remote is the client address, for the backend's own
	// logging or policy. Login must not take the snapshot or lock anything:
	// the server locks Key first and then calls Messages.
	Login(ctx context.Context, user, password string, remote net.Addr) (Maildrop, error)
}

// SCRAMBackend is a Backend that also offers SCRAM-SHA-256 (RFC 7677): it gives a user's
// credentials (made-up ones for an unknown user, so the exchange fails like a wrong password)
// and opens the maildrop of a user whose proof checked.
type SCRAMBackend interface {
	Backend
	SCRAMCredentials(ctx context.Context, user string) (scram.Credentials, error)
	OpenVerified(ctx context.Context, user string) (Maildrop, error)
}

// Maildrop is one authenticated user's INBOX for the length of one session.
// The server calls Close exactly once for every Maildrop Login returned.
type Maildrop interface {
	// Key names the maildrop for the exclusive session lock (RFC 1939 §8):
	// two Maildrops with the same Key are the same INBOX, whatever name the
	// user logged in with. An account ID is a good key.
	Key() string
	// Messages is called once, after the lock is taken, and returns the
	// snapshot the session works on (RFC 1939 §4: mail arriving later is not
	// visible until the next session), oldest first. It may return ErrInUse.
	Messages(ctx context.Context) ([]Message, error)
	// Open returns the raw message whose ID came from Messages. It returns
	// ErrGone if the message has been removed meanwhile.
	Open(ctx context.Context, id int64) (io.ReadCloser, error)
	// Delete removes the messages in one transaction and publishes the
	// expunges like any other (so IMAP sessions see them). It is called only
	// in the UPDATE state (after QUIT), never for a dropped connection. IDs
	// that are already gone are not an error.
	Delete(ctx context.Context, ids []int64) error
	// Close releases whatever the maildrop holds. The server releases its lock
	// after Close returns.
	Close() error
}

// Message describes one message of the snapshot.
type Message struct {
	// ID is opaque to the server and only passed back to Open and Delete.
	ID int64
	// UIDL is the unique-id listing (RFC 1939 §7): stable across sessions and
	// restarts, never reused for another message, 1 to 70 characters in the
	// range 0x21 to 0x7E.
	UIDL string
	// Size is the exact number of octets RETR sends before dot-stuffing: the
	// stored bytes with every line ending as CRLF. Stored messages are
	// CRLF-normalised, so this is their length.
	Size int64
}
