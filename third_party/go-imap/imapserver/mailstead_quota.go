package imapserver

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// This file adds the QUOTA commands of RFC 9208 (GETQUOTA, GETQUOTAROOT; SETQUOTA only comes
// with QUOTASET, which is not offered). (mailstead)

// QuotaResource is one resource of a quota root (RFC 9208 §5). For STORAGE, Usage and Limit
// are in units of 1024 octets.
type QuotaResource struct {
	Type         imap.QuotaResourceType
	Usage, Limit int64
}

// SessionQuota is a session that supports QUOTA. A server advertising QUOTA must use one.
type SessionQuota interface {
	Session
	// QuotaRoots returns the quota roots a mailbox belongs to; none when it has no quota.
	QuotaRoots(mailbox string) ([]string, error)
	// Quota returns a quota root's resources; an unknown root is an *imap.Error NO.
	Quota(root string) ([]QuotaResource, error)
}

func (c *Conn) quotaSession() (SessionQuota, error) {
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return nil, err
	}
	sess, ok := c.session.(SessionQuota)
	if !ok || !c.server.options.caps().Has(imap.CapQuota) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command"}
	}
	return sess, nil
}

// handleGetQuota: GETQUOTA quota-root (RFC 9208 §4.1.1).
func (c *Conn) handleGetQuota(dec *imapwire.Decoder) error {
	var root string
	if !dec.ExpectSP() || !dec.ExpectAString(&root) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	sess, err := c.quotaSession()
	if err != nil {
		return err
	}
	res, err := sess.Quota(root)
	if err != nil {
		return err
	}
	return c.writeQuota(root, res)
}

// handleGetQuotaRoot: GETQUOTAROOT mailbox (RFC 9208 §4.1.2): the roots, then each root's QUOTA.
func (c *Conn) handleGetQuotaRoot(dec *imapwire.Decoder) error {
	var mailbox string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&mailbox) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	sess, err := c.quotaSession()
	if err != nil {
		return err
	}
	roots, err := sess.QuotaRoots(mailbox)
	if err != nil {
		return err
	}
	quotas := make([][]QuotaResource, len(roots))
	for i, root := range roots {
		if quotas[i], err = sess.Quota(root); err != nil {
			return err
		}
	}
	enc := newResponseEncoder(c)
	enc.Atom("*").SP().Atom("QUOTAROOT").SP().Mailbox(mailbox)
	for _, root := range roots {
		enc.SP().String(root)
	}
	err = enc.CRLF()
	enc.end()
	if err != nil {
		return err
	}
	for i, root := range roots {
		if err := c.writeQuota(root, quotas[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Conn) writeQuota(root string, res []QuotaResource) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("QUOTA").SP().String(root).SP().List(len(res), func(i int) {
		enc.Atom(string(res[i].Type)).SP().Number64(res[i].Usage).SP().Number64(res[i].Limit)
	})
	return enc.CRLF()
}
