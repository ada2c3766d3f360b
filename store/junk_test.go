package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// The model stays within its bound: old rare tokens go first, frequent ones stay.
func TestJunkPrune(t *testing.T) {
	s := openTest(t)
	alice, bob := fixture(t, s)
	ctx := context.Background()
	var rare []string
	for i := range 50 {
		rare = append(rare, fmt.Sprintf("rare%d", i))
	}
	if _, _, err := s.JunkTrain(ctx, alice.ID, "m1", true, rare); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, err := s.JunkTrain(ctx, alice.ID, fmt.Sprintf("f%d", i), false, []string{"frequent"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.JunkTrain(ctx, bob.ID, "m1", true, rare); err != nil {
		t.Fatal(err)
	}
	removed, err := s.JunkPrune(ctx, alice.ID, 20, 2)
	if err != nil {
		t.Fatal(err)
	}
	var left, bobs, trained int
	s.db.QueryRow("SELECT count(*) FROM junk_tokens WHERE account_id = ?", alice.ID).Scan(&left)
	s.db.QueryRow("SELECT count(*) FROM junk_tokens WHERE account_id = ?", bob.ID).Scan(&bobs)
	s.db.QueryRow("SELECT count(*) FROM junk_trained WHERE account_id = ?", alice.ID).Scan(&trained)
	if left != 18 || removed != 33 || bobs != 50 || trained != 2 {
		t.Errorf("after prune: alice %d tokens (%d removed), bob %d, alice trained %d", left, removed, bobs, trained)
	}
	_, _, counts, err := s.JunkModel(ctx, alice.ID)
	if err != nil || counts["frequent"] != [2]int64{3, 0} {
		t.Errorf("frequent token: %v %v", counts, err)
	}
}

// The filing counter adds up per account and day.
func TestJunkFiled(t *testing.T) {
	s := openTest(t)
	alice, bob := fixture(t, s)
	ctx := context.Background()
	today := time.Now().Unix() / 86400
	for _, c := range [][3]int64{{today, 1, 0}, {today, 0, 2}, {today - 1, 5, 5}, {today - 30, 9, 9}} {
		if err := s.AddJunkFiled(ctx, alice.ID, c[0], c[1], c[2]); err != nil {
			t.Fatal(err)
		}
	}
	days, err := s.JunkFiled(ctx, alice.ID, 7)
	if err != nil || len(days) != 2 || days[0].Inbox != 1 || days[0].Junk != 2 || days[1].Inbox != 5 {
		t.Errorf("alice: %+v %v", days, err)
	}
	if days, _ := s.JunkFiled(ctx, bob.ID, 7); len(days) != 0 {
		t.Errorf("bob: %+v", days)
	}
}

// The model is in the one database, so a backup holds it: a restored data directory classifies
// as the original did.
func TestJunkModelInBackup(t *testing.T) {
	s := openTest(t)
	alice, _ := fixture(t, s)
	ctx := context.Background()
	if _, _, err := s.JunkTrain(ctx, alice.ID, "k1", true, []string{"cheap", "pills"}); err != nil {
		t.Fatal(err)
	}
	if err := s.JunkMark(ctx, alice.ID, []string{"addr:bob@example.org"}, 1); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "backup")
	if _, err := s.Backup(ctx, dest); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ham, spam, toks, err := b.JunkModel(ctx, alice.ID)
	marks, _ := b.JunkMarks(ctx, alice.ID)
	if err != nil || ham != 0 || spam != 1 || toks["pills"] != [2]int64{0, 1} || marks["addr:bob@example.org"] != 1 {
		t.Errorf("backup's model: %d/%d %v %v %v", ham, spam, toks, marks, err)
	}
	// Training the same content again in the backup changes nothing: the record came along.
	if changed, _, _ := b.JunkTrain(ctx, alice.ID, "k1", true, []string{"cheap", "pills"}); changed {
		t.Error("backup lost the training record")
	}
}
