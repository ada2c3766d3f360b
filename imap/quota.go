package imap

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// QUOTA (RFC 9208): an account with a quota has one quota root, "", holding every mailbox, with
// one resource, STORAGE, the store's limit over the whole account. The store enforces it
// (store.ErrOverQuota → NO [OVERQUOTA]); this only reports it. SETQUOTA is an administrator's
// action here (the admin page, the CLI), so QUOTASET is not offered.

var _ imapserver.SessionQuota = (*session)(nil)

// accountQuotaRoot is the name of the one quota root.
const accountQuotaRoot = ""

var errNoQuotaRoot = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such quota root"}

// QuotaRoots is GETQUOTAROOT's list: the account root when the account has a quota, else none.
func (s *session) QuotaRoots(mailbox string) ([]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.mailbox(ctx, mailbox); err != nil {
		return nil, err
	}
	q, err := s.srv.st.Quota(ctx, s.account.ID)
	if err != nil {
		return nil, s.storeError("quota", err)
	}
	if q.Limit <= 0 {
		return nil, nil
	}
	return []string{accountQuotaRoot}, nil
}

// Quota is GETQUOTA: STORAGE use and limit in units of 1024 octets (RFC 9208 §5.1), use
// rounded up so a client never sees room that is not there.
func (s *session) Quota(root string) ([]imapserver.QuotaResource, error) {
	if root != accountQuotaRoot {
		return nil, errNoQuotaRoot
	}
	ctx, cancel := s.ctx()
	defer cancel()
	q, err := s.srv.st.Quota(ctx, s.account.ID)
	if err != nil {
		return nil, s.storeError("quota", err)
	}
	if q.Limit <= 0 {
		return nil, errNoQuotaRoot
	}
	return []imapserver.QuotaResource{{Type: imap.QuotaResourceStorage, Usage: (q.Used + 1023) / 1024, Limit: q.Limit / 1024}}, nil
}
