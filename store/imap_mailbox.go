package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MailboxDelim is the hierarchy delimiter of mailbox names (RFC 9051 §5.1.1).
const MailboxDelim = '/'

// maxMailboxDepth bounds hierarchies so a client cannot make names without end.
const maxMailboxDepth = 32

// maxMailboxName bounds a mailbox name in bytes.
const maxMailboxName = 1024

var (
	// ErrMailboxName: the name is empty, badly formed, too deep or too long.
	ErrMailboxName = errors.New("invalid mailbox name")
	// ErrHasChildren: DELETE of a mailbox that has inferior names (RFC 5530 HASCHILDREN).
	ErrHasChildren = errors.New("mailbox has children")
	// ErrCannotDelete: INBOX cannot be deleted (RFC 9051 §6.3.5).
	ErrCannotDelete = errors.New("mailbox cannot be deleted")
	// ErrSpecialUse: an RFC 6154 attribute this store does not support for CREATE.
	ErrSpecialUse = errors.New("unsupported special-use attribute")
)

// supportedSpecialUse are the RFC 6154 attributes a mailbox may be created with. \All and
// \Flagged name virtual mailboxes, which this store does not have.
var supportedSpecialUse = map[string]string{
	`\archive`: `\Archive`, `\drafts`: `\Drafts`, `\junk`: `\Junk`, `\sent`: `\Sent`, `\trash`: `\Trash`,
}

// CanonicalMailboxName checks a mailbox name and returns it with INBOX in upper case (RFC 9051
// §5.1: INBOX is case-insensitive, every other name is case-sensitive). Names may not be empty,
// start or end with the delimiter, contain an empty level, control characters or the LIST
// wildcards, or be deeper than maxMailboxDepth levels.
func CanonicalMailboxName(name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("mailbox %q: %s: %w", name, why, ErrMailboxName)
	}
	if name == "" || len(name) > maxMailboxName {
		return bad("empty or too long")
	}
	if !utf8.ValidString(name) {
		return bad("not UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return bad("forbidden character")
		}
	}
	levels := strings.Split(name, string(MailboxDelim))
	if len(levels) > maxMailboxDepth {
		return bad("hierarchy too deep")
	}
	for _, l := range levels {
		if l == "" {
			return bad("empty hierarchy level")
		}
	}
	if equalFoldASCII(levels[0], "INBOX") {
		levels[0] = "INBOX"
	}
	return strings.Join(levels, string(MailboxDelim)), nil
}

// parents returns the superior names of name, outermost first: "a/b/c" → "a", "a/b".
func parents(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == MailboxDelim {
			out = append(out, name[:i])
		}
	}
	return out
}

func (t *writeTx) mailboxByName(accountID int64, name string) (Mailbox, error) {
	m, err := scanMailbox(t.QueryRow("SELECT "+mailboxColumns+" FROM mailboxes WHERE account_id = ? AND name = ?", accountID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("mailbox %q: %w", name, ErrNotFound)
	}
	return m, err
}

func (t *writeTx) mailboxExists(accountID int64, name string) (bool, error) {
	var n int
	err := t.QueryRow("SELECT count(*) FROM mailboxes WHERE account_id = ? AND name = ?", accountID, name).Scan(&n)
	return n > 0, err
}

// createParents makes every missing superior name of name (RFC 9051 §6.3.4: the server SHOULD
// create superior hierarchical names that are needed). They are not subscribed.
func (t *writeTx) createParents(accountID int64, name string) error {
	for _, p := range parents(name) {
		ok, err := t.mailboxExists(accountID, p)
		if err != nil {
			return err
		}
		if !ok {
			if _, err := t.newMailbox(accountID, p, "", false); err != nil {
				return err
			}
		}
	}
	return nil
}

// CreateMailbox creates name (and any missing superiors) with a fresh UIDVALIDITY. specialUse is
// "" or one RFC 6154 attribute (CREATE-SPECIAL-USE, RFC 6154 §3).
func (s *Store) CreateMailbox(ctx context.Context, accountID int64, name, specialUse string) (Mailbox, error) {
	name, err := CanonicalMailboxName(name)
	if err != nil {
		return Mailbox{}, err
	}
	if specialUse != "" {
		use, ok := supportedSpecialUse[strings.ToLower(specialUse)]
		if !ok {
			return Mailbox{}, fmt.Errorf("mailbox %q use %s: %w", name, specialUse, ErrSpecialUse)
		}
		specialUse = use
	}
	var mb Mailbox
	err = s.update(ctx, func(t *writeTx) error {
		ok, err := t.mailboxExists(accountID, name)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("mailbox %q: %w", name, ErrExists)
		}
		if err := t.createParents(accountID, name); err != nil {
			return err
		}
		if mb, err = t.createMailbox(accountID, name, specialUse); err != nil {
			return err
		}
		return t.adoptOrphanSubscriptions(accountID)
	})
	return mb, err
}

// childPrefixCond matches the inferior names of ?2 (a prefix comparison, not LIKE, so that names
// holding "_" match only themselves).
const childPrefixCond = "substr(name, 1, length(?2) + 1) = ?2 || '/'"

// DeleteMailbox removes a mailbox and its messages. INBOX cannot be deleted, and a mailbox with
// inferior names is refused rather than left as a \Noselect placeholder (RFC 9051 §6.3.5 allows
// either; refusing keeps every listed name selectable).
func (s *Store) DeleteMailbox(ctx context.Context, accountID int64, name string) error {
	name, err := CanonicalMailboxName(name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return fmt.Errorf("mailbox INBOX: %w", ErrCannotDelete)
	}
	return s.update(ctx, func(t *writeTx) error {
		mb, err := t.mailboxByName(accountID, name)
		if err != nil {
			return err
		}
		var children int
		if err := t.QueryRow("SELECT count(*) FROM mailboxes WHERE account_id = ?1 AND "+childPrefixCond,
			accountID, name).Scan(&children); err != nil {
			return err
		}
		if children > 0 {
			return fmt.Errorf("mailbox %q: %w", name, ErrHasChildren)
		}
		blobs, err := t.blobIDs("SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = ?", mb.ID)
		if err != nil {
			return err
		}
		if _, err := t.Exec("DELETE FROM messages WHERE mailbox_id = ?", mb.ID); err != nil {
			return fmt.Errorf("delete messages of %q: %w", name, err)
		}
		if _, err := t.Exec("DELETE FROM mailboxes WHERE id = ?", mb.ID); err != nil {
			return fmt.Errorf("delete mailbox %q: %w", name, err)
		}
		if mb.Subscribed {
			// RFC 3501 §6.3.6: the subscription outlives the mailbox.
			if _, err := t.Exec("INSERT INTO orphan_subscriptions (account_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING", accountID, name); err != nil {
				return fmt.Errorf("keep subscription of %q: %w", name, err)
			}
		}
		for _, b := range blobs {
			if err := t.deleteBlobIfUnused(b); err != nil {
				return err
			}
		}
		t.Publish(Event{Kind: MailboxDeleted, AccountID: accountID, MailboxID: mb.ID, Name: name})
		return nil
	})
}

func (t *writeTx) blobIDs(query string, args ...any) ([]int64, error) {
	return column[int64](t.Query(query, args...))
}

// RenameMailbox renames from to to, with its inferior names. Renaming INBOX moves all its
// messages into a new mailbox named to and leaves INBOX empty; INBOX's inferiors stay
// (RFC 9051 §6.3.6).
func (s *Store) RenameMailbox(ctx context.Context, accountID int64, from, to string) error {
	from, err := CanonicalMailboxName(from)
	if err != nil {
		return err
	}
	to, err = CanonicalMailboxName(to)
	if err != nil {
		return err
	}
	if to == "INBOX" || to == from || strings.HasPrefix(to, from+"/") {
		return fmt.Errorf("rename %q to %q: %w", from, to, ErrMailboxName)
	}
	return s.update(ctx, func(t *writeTx) error {
		src, err := t.mailboxByName(accountID, from)
		if err != nil {
			return err
		}
		if ok, err := t.mailboxExists(accountID, to); err != nil || ok {
			return errors.Join(err, fmt.Errorf("mailbox %q: %w", to, ErrExists))
		}
		if from == "INBOX" {
			return t.renameInbox(src, to)
		}
		// Inferiors of from move with it; none of their new names may exist already.
		var clash int
		if err := t.QueryRow(`SELECT count(*) FROM mailboxes m WHERE account_id = ?1 AND `+childPrefixCond+`
			AND EXISTS (SELECT 1 FROM mailboxes o WHERE o.account_id = ?1 AND o.name = ?3 || substr(m.name, length(?2) + 1))`,
			accountID, from, to).Scan(&clash); err != nil {
			return err
		}
		if clash > 0 {
			return fmt.Errorf("rename %q to %q: an inferior name exists: %w", from, to, ErrExists)
		}
		rows, err := t.Query(`UPDATE mailboxes SET name = ?3 || substr(name, length(?2) + 1)
			WHERE account_id = ?1 AND (name = ?2 OR `+childPrefixCond+`) RETURNING id, name`, accountID, from, to)
		if err != nil {
			return fmt.Errorf("rename %q: %w", from, err)
		}
		var renamed []Event
		for rows.Next() {
			ev := Event{Kind: MailboxRenamed, AccountID: accountID}
			if err := rows.Scan(&ev.MailboxID, &ev.Name); err != nil {
				rows.Close()
				return err
			}
			renamed = append(renamed, ev)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, ev := range renamed {
			if len(strings.Split(ev.Name, "/")) > maxMailboxDepth {
				return fmt.Errorf("rename %q to %q: hierarchy too deep: %w", from, to, ErrMailboxName)
			}
			t.Publish(ev)
		}
		if err := t.createParents(accountID, to); err != nil {
			return err
		}
		return t.adoptOrphanSubscriptions(accountID)
	})
}

// renameInbox moves every message of INBOX into a new mailbox. The messages keep their UIDs:
// the new mailbox has a UIDVALIDITY never seen before, so no client can confuse them.
func (t *writeTx) renameInbox(inbox Mailbox, to string) error {
	if err := t.createParents(inbox.AccountID, to); err != nil {
		return err
	}
	dst, err := t.createMailbox(inbox.AccountID, to, "")
	if err != nil {
		return err
	}
	rows, err := t.Query(`UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ? RETURNING uid, flags, modseq`, dst.ID, inbox.ID)
	if err != nil {
		return fmt.Errorf("move INBOX messages: %w", err)
	}
	var uids []uint32
	var added []Event
	for rows.Next() {
		var uid uint32
		var flags string
		var modseq int64
		if err := rows.Scan(&uid, &flags, &modseq); err != nil {
			rows.Close()
			return err
		}
		uids = append(uids, uid)
		added = append(added, Event{Kind: MessageAdded, AccountID: inbox.AccountID, MailboxID: dst.ID,
			UIDs: []uint32{uid}, Flags: parseFlags(flags), ModSeq: modseq})
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if _, err := t.Exec("UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
		inbox.UIDNext, inbox.HighestModSeq+1, dst.ID); err != nil {
		return err
	}
	sortUIDs(added)
	for _, ev := range added {
		t.Publish(ev)
	}
	if len(uids) == 0 {
		return nil
	}
	modseq, err := t.bumpModSeq(inbox.ID)
	if err != nil {
		return err
	}
	sortUint32(uids)
	return t.publishExpunged(inbox.AccountID, inbox.ID, uids, modseq)
}

// SetSubscribed subscribes or unsubscribes a name (RFC 9051 §6.3.7, §6.3.8). SUBSCRIBE needs the
// mailbox to exist; UNSUBSCRIBE also drops the kept subscription of a deleted mailbox.
func (s *Store) SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error {
	name, err := CanonicalMailboxName(name)
	if err != nil {
		return err
	}
	return s.update(ctx, func(t *writeTx) error {
		res, err := t.Exec("UPDATE mailboxes SET subscribed = ? WHERE account_id = ? AND name = ?", subscribed, accountID, name)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if !subscribed {
			res, err := t.Exec("DELETE FROM orphan_subscriptions WHERE account_id = ? AND name = ?", accountID, name)
			if err != nil {
				return fmt.Errorf("unsubscribe %q: %w", name, err)
			}
			orphans, _ := res.RowsAffected()
			n += orphans
		}
		if n == 0 {
			return fmt.Errorf("mailbox %q: %w", name, ErrNotFound)
		}
		return nil
	})
}

// adoptOrphanSubscriptions gives mailboxes created under a subscribed name their subscription
// back: subscriptions are of names (RFC 3501 §6.3.6).
func (t *writeTx) adoptOrphanSubscriptions(accountID int64) error {
	if _, err := t.Exec(`UPDATE mailboxes SET subscribed = 1 WHERE account_id = ?1
		AND name IN (SELECT name FROM orphan_subscriptions WHERE account_id = ?1)`, accountID); err != nil {
		return fmt.Errorf("adopt subscriptions: %w", err)
	}
	if _, err := t.Exec(`DELETE FROM orphan_subscriptions WHERE account_id = ?1
		AND name IN (SELECT name FROM mailboxes WHERE account_id = ?1)`, accountID); err != nil {
		return fmt.Errorf("adopt subscriptions: %w", err)
	}
	return nil
}

// OrphanSubscriptions lists the subscribed names of an account that have no mailbox, by name.
func (s *Store) OrphanSubscriptions(ctx context.Context, accountID int64) ([]string, error) {
	return column[string](s.db.QueryContext(ctx, "SELECT name FROM orphan_subscriptions WHERE account_id = ? ORDER BY name", accountID))
}

// ClaimRecent hands the messages of a mailbox not yet announced to any IMAP4rev1 session, up to
// and including UID upTo, to the caller: it returns the first UID that is \Recent for the caller
// (RFC 3501 §2.3.2: exactly one session sees a message as recent). Every UID from the result to
// upTo is the caller's; the result is above upTo when there are none.
func (s *Store) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	var first uint32
	err := s.update(ctx, func(t *writeTx) error {
		err := t.QueryRow("SELECT first_recent_uid FROM mailboxes WHERE id = ?", mailboxID).Scan(&first)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
		}
		if err != nil || first > upTo {
			return err
		}
		_, err = t.Exec("UPDATE mailboxes SET first_recent_uid = ? WHERE id = ?", int64(upTo)+1, mailboxID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("claim recent of mailbox %d: %w", mailboxID, err)
	}
	return first, nil
}

// MailboxStatus holds the counters STATUS reports (RFC 9051 §6.3.11, STATUS=SIZE RFC 8438).
type MailboxStatus struct {
	Mailbox
	Messages, Unseen, Deleted uint32
	// Recent counts messages no IMAP4rev1 session has been told of yet (RFC 3501 §2.3.2).
	Recent uint32
	Size   int64
	// DeletedSize is the size of the \Deleted messages (STATUS DELETED-STORAGE, RFC 9208 §4.4).
	DeletedSize int64
}

// Status counts a mailbox's messages.
func (s *Store) Status(ctx context.Context, mailboxID int64) (MailboxStatus, error) {
	var st MailboxStatus
	err := retryBusy(ctx, func() error {
		mb, err := s.MailboxByID(ctx, mailboxID)
		if err != nil {
			return err
		}
		st.Mailbox = mb
		return s.db.QueryRowContext(ctx, `SELECT count(*),
			coalesce(sum(instr(' ' || flags || ' ', ' \Seen ') = 0), 0),
			coalesce(sum(instr(' ' || flags || ' ', ' \Deleted ') > 0), 0),
			coalesce(sum(uid >= (SELECT first_recent_uid FROM mailboxes WHERE id = ?1)), 0),
			coalesce(sum(size), 0),
			coalesce(sum(size * (instr(' ' || flags || ' ', ' \Deleted ') > 0)), 0) FROM messages WHERE mailbox_id = ?1`, mailboxID).
			Scan(&st.Messages, &st.Unseen, &st.Deleted, &st.Recent, &st.Size, &st.DeletedSize)
	})
	if err != nil {
		return MailboxStatus{}, fmt.Errorf("status of mailbox %d: %w", mailboxID, err)
	}
	return st, nil
}

// bumpModSeq gives the mailbox a new HIGHESTMODSEQ and returns it.
func (t *writeTx) bumpModSeq(mailboxID int64) (int64, error) {
	var m int64
	err := t.QueryRow("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq", mailboxID).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("mailbox %d: %w", mailboxID, ErrNotFound)
	}
	return m, err
}

// update is updateOnce retried while the database reports itself busy. The single writer means this
// process never contends with itself; another process (a backup, the CLI with the server
// stopped) can still hold the lock for a moment, and that must not reach an IMAP client as NO.
func (s *Store) update(ctx context.Context, fn func(*writeTx) error) error {
	return retryBusy(ctx, func() error { return s.updateOnce(ctx, fn) })
}

func retryBusy(ctx context.Context, fn func() error) error {
	delay := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := fn()
		if !isBusy(err) {
			return err
		}
		if attempt >= 8 {
			return fmt.Errorf("%w: %v", ErrBusy, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrBusy, err)
		case <-time.After(delay):
		}
		delay *= 2
	}
}
