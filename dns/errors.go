package dns

import (
	"errors"
	"fmt"
	"net"

	mdns "github.com/miekg/dns"
)

// The outcomes mail code must tell apart (RFC 5321 section 4.2.5: a
// permanent 5xx only when the answer is definite, 4xx when DNS failed).
var (
	// ErrNotFound: there is no answer for the name and type. errors.Is
	// matches it both when the name does not exist (NXDOMAIN) and when the
	// name exists without records of the asked type (see ErrNoRecords).
	ErrNotFound = errors.New("dns: not found")
	// ErrNoRecords: the name exists but has no records of the asked type
	// (NOERROR with an empty answer, "NODATA"). An error matching
	// ErrNotFound but not ErrNoRecords means NXDOMAIN; see IsNXDomain.
	ErrNoRecords = errors.New("dns: no records of that type")
	// ErrNullMX: the domain publishes a null MX ("0 ."), declaring that it
	// accepts no mail (RFC 7505). Returned by LookupMX only; it is neither
	// temporary nor not-found.
	ErrNullMX = errors.New("dns: domain accepts no mail (null MX)")
)

type errKind int

const (
	kindTemporary errKind = iota // SERVFAIL, REFUSED, timeout, network, cancelled
	kindNotFound                 // NXDOMAIN
	kindNoRecords                // NOERROR, no records of that type
	kindPermanent                // FORMERR, NOTIMP and other definite failures
	kindNullMX
)

// Error describes one failed lookup.
type Error struct {
	Name   string // the name asked for
	Type   string // "MX", "TXT", ...
	Server string // the server that answered last, if any
	Rcode  int    // DNS response code, 0 when none came or NOERROR
	Err    error  // underlying transport or context error, if any
	kind   errKind
}

func (e *Error) Error() string {
	var what string
	switch e.kind {
	case kindNotFound:
		what = "name does not exist"
	case kindNoRecords:
		what = "no records"
	case kindNullMX:
		what = "null MX, domain accepts no mail"
	case kindTemporary:
		what = "temporary failure"
	default:
		what = "failure"
	}
	if e.Rcode != 0 {
		what += " (" + mdns.RcodeToString[e.Rcode] + ")"
	}
	s := fmt.Sprintf("dns: %s %s: %s", e.Type, trimDot(e.Name), what)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying transport or context error.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound / ErrNoRecords / ErrNullMX) work.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.kind == kindNotFound || e.kind == kindNoRecords
	case ErrNoRecords:
		return e.kind == kindNoRecords
	case ErrNullMX:
		return e.kind == kindNullMX
	}
	return false
}

// Temporary reports whether asking again later may give an answer.
func (e *Error) Temporary() bool { return e.kind == kindTemporary }

// Timeout reports whether the lookup timed out.
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// IsTemporary reports whether err is a DNS failure that may go away: a
// SERVFAIL or REFUSED answer, a timeout, a network error or a cancelled
// context. Mail code answers those with 4xx, never 5xx.
func IsTemporary(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	return false
}

// IsNotFound reports whether err says there is no such record: NXDOMAIN or
// NODATA. Same as errors.Is(err, ErrNotFound).
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsNXDomain reports whether err says the name itself does not exist.
func IsNXDomain(err error) bool {
	return errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNoRecords)
}
