package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Append stores msg as a new message of the mailbox with the given flags and internal date (zero
// means now), returning the mailbox's UIDVALIDITY and the new UID (RFC 4315 APPENDUID).
// ENVELOPE and BODYSTRUCTURE are computed here, outside the writer, through Options.Describe.
func (s *Store) Append(ctx context.Context, mailboxID int64, msg []byte, flags []string, date time.Time) (uidValidity, uid uint32, err error) {
	if date.IsZero() {
		date = time.Now()
	}
	var envelope, structure []byte
	if s.opts.Describe != nil {
		envelope, structure = s.opts.Describe(bytes.NewReader(msg), int64(len(msg)))
	}
	err = s.update(ctx, func(t *writeTx) error {
		if err := t.QueryRow("SELECT uidvalidity FROM mailboxes WHERE id = ?", mailboxID).Scan(&uidValidity); err != nil {
			return fmt.Errorf("mailbox %d: %w", mailboxID, notFound(err))
		}
		blobID, err := t.insertBlob(bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			return err
		}
		uid, err = t.insertMessage(mailboxID, newMessage{blobID: blobID, size: int64(len(msg)), flags: flags,
			date: date, envelope: envelope, structure: structure, origin: FromAppend})
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("append to mailbox %d: %w", mailboxID, err)
	}
	return uidValidity, uid, nil
}

// FlagOp is how StoreFlags combines flags with a message's current ones (RFC 9051 §6.4.6).
type FlagOp int

const (
	FlagsReplace FlagOp = iota // FLAGS
	FlagsAdd                   // +FLAGS
	FlagsRemove                // -FLAGS
)

// FlagResult is a message's flag set after StoreFlags.
type FlagResult struct {
	UID    uint32
	Flags  []string
	ModSeq int64
}

// StoreFlags changes the flags of the messages with the given UIDs, which must be sorted. Every
// message that changed gets the same new MODSEQ and a FlagsChanged event; the result lists every
// message found, changed or not, in UID order, with modseq, the new MODSEQ (0 if nothing changed).
func (s *Store) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op FlagOp, flags []string) (res []FlagResult, modseq int64, err error) {
	res, _, modseq, err = s.StoreFlagsUnchangedSince(ctx, mailboxID, uids, op, flags, 0)
	return res, modseq, err
}

// StoreFlagsUnchangedSince is StoreFlags for CONDSTORE's STORE (UNCHANGEDSINCE n) (RFC 7162
// §3.1.3): a message whose MODSEQ is above unchangedSince is left alone and its UID returned in
// modified. 0 means no condition.
func (s *Store) StoreFlagsUnchangedSince(ctx context.Context, mailboxID int64, uids []uint32, op FlagOp, flags []string,
	unchangedSince int64) (res []FlagResult, modified []uint32, modseq int64, err error) {
	flags = CanonicalFlags(flags)
	if len(uids) == 0 {
		return nil, nil, 0, nil
	}
	err = s.update(ctx, func(t *writeTx) error {
		res, modified, modseq = res[:0], modified[:0], 0
		rows, err := t.Query(`SELECT id, uid, flags, modseq FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid`,
			mailboxID, uids[0], uids[len(uids)-1])
		if err != nil {
			return err
		}
		type change struct {
			id    int64
			flags string
		}
		var changes []change
		var changedIdx []int
		for rows.Next() {
			var id int64
			var r FlagResult
			var cur string
			if err := rows.Scan(&id, &r.UID, &cur, &r.ModSeq); err != nil {
				rows.Close()
				return err
			}
			if _, ok := slices.BinarySearch(uids, r.UID); !ok {
				continue
			}
			if unchangedSince > 0 && r.ModSeq > unchangedSince {
				modified = append(modified, r.UID)
				continue
			}
			next := applyFlags(parseFlags(cur), op, flags)
			joined := strings.Join(next, " ")
			r.Flags = next
			if joined != cur {
				changes = append(changes, change{id, joined})
				changedIdx = append(changedIdx, len(res))
			}
			res = append(res, r)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		var accountID int64
		if err := t.QueryRow("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq, account_id",
			mailboxID).Scan(&modseq, &accountID); err != nil {
			return err
		}
		for i, c := range changes {
			if _, err := t.Exec("UPDATE messages SET flags = ?, modseq = ? WHERE id = ?", c.flags, modseq, c.id); err != nil {
				return err
			}
			r := &res[changedIdx[i]]
			r.ModSeq = modseq
			t.Publish(Event{Kind: FlagsChanged, AccountID: accountID, MailboxID: mailboxID, UIDs: []uint32{r.UID}, Flags: r.Flags, ModSeq: modseq})
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("store flags in mailbox %d: %w", mailboxID, err)
	}
	return res, modified, modseq, nil
}

// applyFlags returns cur changed by op, in canonical form. Flags compare case-insensitively
// (RFC 9051 §2.3.2); a keyword keeps the case it was first stored with.
func applyFlags(cur []string, op FlagOp, flags []string) []string {
	switch op {
	case FlagsReplace:
		return CanonicalFlags(flags)
	case FlagsAdd:
		return CanonicalFlags(append(slices.Clip(cur), flags...))
	case FlagsRemove:
		drop := make(map[string]bool, len(flags))
		for _, f := range flags {
			drop[strings.ToLower(f)] = true
		}
		out := make([]string, 0, len(cur))
		for _, f := range cur {
			if !drop[strings.ToLower(f)] {
				out = append(out, f)
			}
		}
		return CanonicalFlags(out)
	}
	return cur
}

// Expunge removes the messages flagged \Deleted, only those among uids when uids is not nil
// (UID EXPUNGE, RFC 4315), and returns the UIDs removed in ascending order.
func (s *Store) Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error) {
	var gone []uint32
	err := s.update(ctx, func(t *writeTx) error {
		rows, err := t.Query(`SELECT id, uid, blob_id FROM messages WHERE mailbox_id = ?
			AND instr(' ' || flags || ' ', ' \Deleted ') > 0 ORDER BY uid`, mailboxID)
		if err != nil {
			return err
		}
		var ids []int64
		gone = gone[:0]
		for rows.Next() {
			var id, blob int64
			var uid uint32
			if err := rows.Scan(&id, &uid, &blob); err != nil {
				rows.Close()
				return err
			}
			if uids != nil {
				if _, ok := slices.BinarySearch(uids, uid); !ok {
					continue
				}
			}
			ids = append(ids, id)
			gone = append(gone, uid)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		return t.removeMessages(mailboxID, ids)
	})
	if err != nil {
		return nil, fmt.Errorf("expunge mailbox %d: %w", mailboxID, err)
	}
	return gone, nil
}

// DeleteMessages removes messages by ID (POP3's UPDATE state, RFC 1939 §6). IDs already gone
// are ignored. Open IMAP sessions see the messages expunged.
func (s *Store) DeleteMessages(ctx context.Context, mailboxID int64, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.update(ctx, func(t *writeTx) error {
		return t.removeMessages(mailboxID, ids)
	})
	if err != nil {
		return fmt.Errorf("delete messages from mailbox %d: %w", mailboxID, err)
	}
	return nil
}

// removeMessages deletes messages of one mailbox, drops bodies nothing uses any more, bumps
// HIGHESTMODSEQ and publishes one MessagesExpunged event.
func (t *writeTx) removeMessages(mailboxID int64, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	var uids []uint32
	blobs := map[int64]bool{}
	for _, id := range ids {
		var uid uint32
		var blob int64
		err := t.QueryRow("DELETE FROM messages WHERE id = ? AND mailbox_id = ? RETURNING uid, blob_id", id, mailboxID).Scan(&uid, &blob)
		if err != nil {
			if errors.Is(notFound(err), ErrNotFound) {
				continue
			}
			return fmt.Errorf("delete message %d: %w", id, err)
		}
		uids = append(uids, uid)
		blobs[blob] = true
	}
	for b := range blobs {
		if err := t.deleteBlobIfUnused(b); err != nil {
			return err
		}
	}
	if len(uids) == 0 {
		return nil
	}
	var modseq, accountID int64
	if err := t.QueryRow("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq, account_id",
		mailboxID).Scan(&modseq, &accountID); err != nil {
		return err
	}
	sortUint32(uids)
	return t.publishExpunged(accountID, mailboxID, uids, modseq)
}

// CopyResult is RFC 4315 COPYUID data: Source[i] became Dest[i] in a mailbox of UIDValidity.
type CopyResult struct {
	UIDValidity  uint32
	Source, Dest []uint32
}

// CopyMessages copies the messages with the given sorted UIDs from src to dst, in UID order, with
// their flags and internal dates. Copies share the body (same blob, same prefix).
func (s *Store) CopyMessages(ctx context.Context, src, dst int64, uids []uint32) (CopyResult, error) {
	return s.transfer(ctx, src, dst, uids, false)
}

// MoveMessages moves messages like CopyMessages followed by an expunge of the originals, in one
// transaction (RFC 6851): the message rows move, and get new UIDs in dst.
func (s *Store) MoveMessages(ctx context.Context, src, dst int64, uids []uint32) (CopyResult, error) {
	return s.transfer(ctx, src, dst, uids, true)
}

func (s *Store) transfer(ctx context.Context, src, dst int64, uids []uint32, move bool) (CopyResult, error) {
	var res CopyResult
	if len(uids) == 0 {
		return res, nil
	}
	err := s.update(ctx, func(t *writeTx) error {
		res = CopyResult{}
		var dstAccount int64
		if err := t.QueryRow("SELECT uidvalidity, account_id FROM mailboxes WHERE id = ?", dst).Scan(&res.UIDValidity, &dstAccount); err != nil {
			return fmt.Errorf("mailbox %d: %w", dst, notFound(err))
		}
		rows, err := t.Query(`SELECT id, uid, flags, size FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid`,
			src, uids[0], uids[len(uids)-1])
		if err != nil {
			return err
		}
		var ids []int64
		var flags []string
		var adding int64
		for rows.Next() {
			var id, size int64
			var uid uint32
			var f string
			if err := rows.Scan(&id, &uid, &f, &size); err != nil {
				rows.Close()
				return err
			}
			if _, ok := slices.BinarySearch(uids, uid); ok {
				ids = append(ids, id)
				res.Source = append(res.Source, uid)
				flags = append(flags, f)
				adding += size
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if !move {
			// A move stays in the account; a copy adds its messages' sizes again.
			if err := t.checkQuota(dstAccount, adding); err != nil {
				return err
			}
		}
		// One block of UIDs and one MODSEQ for the whole transfer.
		var first uint32
		var modseq int64
		if err := t.QueryRow(`UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1
			WHERE id = ? RETURNING uidnext - ?, highestmodseq`, len(ids), dst, len(ids)).Scan(&first, &modseq); err != nil {
			return fmt.Errorf("allocate uids: %w", err)
		}
		origin := FromCopy
		if move {
			origin = FromMove
		}
		for i, id := range ids {
			uid := first + uint32(i)
			if move {
				_, err = t.Exec("UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ? WHERE id = ?", dst, uid, modseq, id)
			} else {
				_, err = t.Exec(`INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, prefix, blob_id, envelope, structure)
					SELECT ?, ?, ?, flags, internal_date, size, prefix, blob_id, envelope, structure FROM messages WHERE id = ?`,
					dst, uid, modseq, id)
			}
			if err != nil {
				return fmt.Errorf("transfer message %d: %w", id, err)
			}
			res.Dest = append(res.Dest, uid)
			t.Publish(Event{Kind: MessageAdded, AccountID: dstAccount, MailboxID: dst, UIDs: []uint32{uid}, Flags: parseFlags(flags[i]),
				ModSeq: modseq, Origin: origin, FromMailbox: src})
		}
		if !move {
			return nil
		}
		var srcAccount, srcModSeq int64
		if err := t.QueryRow("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq, account_id",
			src).Scan(&srcModSeq, &srcAccount); err != nil {
			return err
		}
		return t.publishExpunged(srcAccount, src, slices.Clone(res.Source), srcModSeq)
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy from mailbox %d to %d: %w", src, dst, err)
	}
	return res, nil
}

func sortUint32(s []uint32) { slices.Sort(s) }

func sortUIDs(evs []Event) {
	slices.SortFunc(evs, func(a, b Event) int { return int(int64(a.UIDs[0]) - int64(b.UIDs[0])) })
}
