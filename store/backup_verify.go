package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// VerifyReport is what `mailstead verify` found: Problems is empty when the database and its
// cross-references are sound.
type VerifyReport struct {
	Problems []string
	Counts   map[string]int // rows per table, for the summary line
}

// Verify checks the database (SQLite integrity_check and foreign_key_check) and the references
// SQL cannot express: message UIDs below their mailbox's UIDNEXT, MODSEQs at most its
// HIGHESTMODSEQ, sizes that match their bodies, and bodies nothing refers to. Everything is read
// in one transaction, so a server committing meanwhile cannot cause a false finding.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	rep := VerifyReport{Counts: map[string]int{}}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer tx.Rollback()
	rep.Problems, err = checkDatabase(ctx, tx, true)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	for _, table := range []string{"domains", "accounts", "mailboxes", "messages", "blobs", "queue"} {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			return rep, fmt.Errorf("verify: count %s: %w", table, err)
		}
		rep.Counts[table] = n
	}
	return rep, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkDatabase runs the integrity and foreign-key checks and, with crossRefs, the mail-specific
// checks. It returns one sentence per finding.
func checkDatabase(ctx context.Context, q querier, crossRefs bool) ([]string, error) {
	var problems []string
	lines, err := column[string](q.QueryContext(ctx, sqlIntegrityCheck))
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	if len(lines) != 1 || lines[0] != "ok" {
		for _, l := range lines {
			problems = append(problems, "integrity: "+l)
		}
	}
	rows, err := q.QueryContext(ctx, sqlForeignKeyCheck)
	if err != nil {
		return nil, fmt.Errorf("foreign key check: %w", err)
	}
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			rows.Close()
			return nil, err
		}
		problems = append(problems, fmt.Sprintf("foreign key: %s row %d refers to a missing %s row", table, rowid.Int64, parent))
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if !crossRefs {
		return problems, nil
	}
	blobRefs, err := blobReferences(ctx, q)
	if err != nil {
		return nil, err
	}
	orphan := "SELECT count(*) FROM blobs b WHERE 1"
	for _, r := range blobRefs {
		if r[0] == "blob_chunks" {
			continue // a body's own pieces, not a reference to it
		}
		orphan += fmt.Sprintf(` AND NOT EXISTS (SELECT 1 FROM "%s" r WHERE r."%s" = b.id)`, r[0], r[1])
	}
	checks := []struct{ what, query string }{
		{"messages whose body is missing", `SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = m.blob_id)`},
		{"queue entries whose body is missing", `SELECT count(*) FROM queue q WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = q.blob_id)`},
		{"messages in a missing mailbox", `SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM mailboxes x WHERE x.id = m.mailbox_id)`},
		{"messages with a UID not below their mailbox's UIDNEXT", `SELECT count(*) FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id WHERE m.uid >= x.uidnext OR m.uid < 1`},
		{"messages with a MODSEQ above their mailbox's HIGHESTMODSEQ", `SELECT count(*) FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id WHERE m.modseq > x.highestmodseq`},
		{"messages whose size is not their prefix plus body", `SELECT count(*) FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.size != length(m.prefix) + b.size`},
		{"bodies whose recorded size is wrong", `SELECT count(*) FROM blobs b WHERE b.size != length(b.data) +
			(SELECT coalesce(sum(length(c.data)), 0) FROM blob_chunks c WHERE c.blob_id = b.id)`},
		{"large bodies with both inline data and chunks", `SELECT count(*) FROM blobs b WHERE length(b.data) > 0
			AND EXISTS (SELECT 1 FROM blob_chunks c WHERE c.blob_id = b.id)`},
		{"accounts without an INBOX", `SELECT count(*) FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM mailboxes x WHERE x.account_id = a.id AND x.name = 'INBOX')`},
		{"bodies nothing refers to", orphan},
	}
	for _, c := range checks {
		var n int
		if err := q.QueryRowContext(ctx, c.query).Scan(&n); err != nil {
			return nil, fmt.Errorf("check %s: %w", c.what, err)
		}
		if n > 0 {
			problems = append(problems, fmt.Sprintf("%d %s", n, c.what))
		}
	}
	return problems, nil
}

// blobReferences lists every (table, column) with a foreign key to blobs, so a table added by a
// later migration is counted as a reference without this file knowing it.
func blobReferences(ctx context.Context, q querier) ([][2]string, error) {
	refs, err := foreignKeysTo(ctx, q, "blobs")
	if err != nil {
		return nil, fmt.Errorf("list references to bodies: %w", err)
	}
	for _, r := range refs {
		if strings.ContainsAny(r[0]+r[1], `"`) {
			return nil, fmt.Errorf("odd table name %q", r[0])
		}
	}
	return refs, nil
}
