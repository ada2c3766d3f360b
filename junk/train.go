package junk

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Train learns msg as spam or ham for the account. It is idempotent per content (Key): a message
// moved back and forth is counted once, under the class of its last move.
func (f *Filter) Train(ctx context.Context, accountID int64, msg []byte, spam bool) (changed bool, err error) {
	feat := Tokenize(msg)
	toks := append(slices.Clip(feat.Tokens), reputationTokens(feat)...)
	changed, switched, err := f.Store.JunkTrain(ctx, accountID, Key(msg), spam, toks)
	if err != nil {
		return false, fmt.Errorf("junk train account %d: %w", accountID, err)
	}
	if changed {
		f.models.trained(accountID, spam, switched, toks)
	}
	return changed, nil
}

// Forget drops what the filter holds in memory for the account (settings, model), after its
// settings changed: the next message reads them again.
func (f *Filter) Forget(accountID int64) { f.models.forget(accountID) }

// Prune bounds the account's model in the store and drops the cached copy, which is read again
// at the next classification.
func (f *Filter) Prune(ctx context.Context, st interface {
	JunkPrune(ctx context.Context, accountID int64, maxTokens, maxTrained int) (int64, error)
}, accountID int64) error {
	n, err := st.JunkPrune(ctx, accountID, MaxTokens, MaxTrained)
	if err != nil {
		return err
	}
	if n > 0 {
		f.models.forget(accountID)
	}
	return nil
}

// NoteSent records what a message the user sent says about whom they trust: its recipients and
// their domains, and its Message-ID, so that replies in the thread are recognised.
func (f *Filter) NoteSent(ctx context.Context, accountID int64, msg []byte) error {
	feat := Tokenize(msg)
	var keys []string
	for _, r := range feat.Rcpts {
		keys = append(keys, "addr:"+r)
		if at := strings.LastIndexByte(r, '@'); at >= 0 {
			keys = append(keys, "dom:"+r[at+1:])
		}
	}
	if feat.MessageID != "" {
		keys = append(keys, "thread:"+feat.MessageID)
	}
	return f.mark(ctx, accountID, keys, Wrote)
}

// NoteSender adds mark (Replied, Rescued) to the From address of msg.
func (f *Filter) NoteSender(ctx context.Context, accountID int64, msg []byte, m Mark) error {
	feat := Tokenize(msg)
	if feat.From == "" {
		return nil
	}
	return f.mark(ctx, accountID, []string{"addr:" + feat.From}, m)
}

func (f *Filter) mark(ctx context.Context, accountID int64, keys []string, m Mark) error {
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if err := f.Store.JunkMark(ctx, accountID, keys, int(m)); err != nil {
		return fmt.Errorf("junk mark account %d: %w", accountID, err)
	}
	f.models.marked(accountID, keys, int(m))
	return nil
}
