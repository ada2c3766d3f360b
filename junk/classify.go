package junk

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
)

// Store keeps each account's model. The store package implements it; nothing here knows SQL.
type Store interface {
	// JunkAccount returns whether the filter is on for the account and its spam threshold.
	JunkAccount(ctx context.Context, accountID int64) (enabled bool, threshold float64, err error)
	// JunkModel returns how many ham and spam messages the account has trained, and the
	// [ham, spam] counts of every token it has seen.
	JunkModel(ctx context.Context, accountID int64) (ham, spam int64, tokens map[string][2]int64, err error)
	// JunkTrain records the message with content key as spam or ham, once: training the same key
	// with the same class again changes nothing (changed false), and with the other class moves
	// its counts (switched true).
	JunkTrain(ctx context.Context, accountID int64, key string, spam bool, tokens []string) (changed, switched bool, err error)
	// JunkMarks returns every reputation mark (a bit set of Mark) the account has, by key.
	JunkMarks(ctx context.Context, accountID int64) (map[string]int, error)
	// JunkMark adds mark to each key.
	JunkMark(ctx context.Context, accountID int64, keys []string, mark int) error
}

// Mark is what the user did with an address, a domain or a thread.
type Mark int

const (
	Wrote   Mark = 1 << iota // the user sent mail to this address or domain, or this Message-ID
	Replied                  // the user answered mail from this address
	Rescued                  // the user moved mail from this address out of Junk
)

// Robinson–Fisher parameters, as SpamBayes tuned them on large corpora.
const (
	unknownStrength = 0.45 // s: how much an unseen token's assumed probability weighs
	unknownProb     = 0.5  // x: the probability assumed for a token with no history
	minStrength     = 0.1  // tokens closer than this to 0.5 are ignored
	maxClues        = 150
)

// Reputation evidence, as log-odds added to the token score (clamped to 0.001…0.999, log-odds
// ±6.9). A personal server knows who its user writes to; that is worth more than any word, so
// a reply in the user's own thread or mail from someone they wrote to ends below any threshold.
var markWeights = []struct {
	mark   Mark
	key    string // "addr", "dom" or "thread"
	weight float64
	reason string
}{
	{Wrote, "thread", -10, "reply in your thread"},
	{Wrote, "addr", -9, "you wrote to sender"},
	{Replied, "addr", -8, "you replied to sender"},
	{Rescued, "addr", -8, "sender moved out of Junk before"},
	{Wrote, "dom", -3, "you wrote to sender's domain"},
}

// DefaultThreshold is the score from which a message is filed as junk, for an account that has not
// chosen its own. Robinson–Fisher scores of real spam cluster near 1, of ham near 0; the middle is
// "unsure", and unsure mail belongs in the inbox.
const DefaultThreshold = 0.9

// Verdict is the filter's opinion of one message for one account.
type Verdict struct {
	Score   float64 // 0 (ham) … 1 (spam)
	Spam    bool    // Score at or above the account's threshold
	Reasons []string
}

// Header renders the verdict as a header field, CRLF-terminated, ASCII only.
func (v Verdict) Header() string {
	return fmt.Sprintf("%s: %.2f (%s)\r\n", HeaderName, v.Score, strings.Join(v.Reasons, "; "))
}

// Filter classifies messages against each account's model, which it keeps in memory.
type Filter struct {
	Store  Store
	models models
	seen   sync.Pool // token sets for tokenize, reused: a set per message was most of the garbage
}

// Classify scores msg for the account. A disabled filter returns a zero Verdict and ok false.
func (f *Filter) Classify(ctx context.Context, accountID int64, msg []byte) (v Verdict, ok bool, err error) {
	defer func() {
		// A tokenizer bug on a hostile message must cost that message its score, not the MX.
		if r := recover(); r != nil {
			v, ok, err = Verdict{}, false, fmt.Errorf("junk classify account %d: panic: %v", accountID, r)
		}
	}()
	m, err := f.models.get(ctx, f.Store, accountID)
	if err != nil {
		return Verdict{}, false, fmt.Errorf("junk model of account %d: %w", accountID, err)
	}
	if !m.enabled {
		return Verdict{}, false, nil
	}
	seen, _ := f.seen.Get().(map[string]bool)
	if seen == nil {
		seen = make(map[string]bool, 512)
	}
	feat := tokenize(msg, seen)
	clear(seen)
	f.seen.Put(seen)
	v = score(m, feat)
	v.Spam = v.Score >= m.threshold
	return v, true, nil
}

func score(m *model, feat Features) Verdict {
	rep := reputationTokens(feat)
	m.mu.RLock()
	defer m.mu.RUnlock()
	nham, nspam, counts := m.ham, m.spam, m.tokens
	var v Verdict
	if nham+nspam == 0 {
		v.Score = 0.5
		v.Reasons = []string{"nothing learned yet"}
	} else {
		var clues []clue
		v.Score, clues = combine(counts, nham, nspam, feat.Tokens, rep)
		v.Reasons = tokenReasons(clues)
	}
	marks := m.marks
	logit := math.Log(clamp(v.Score) / (1 - clamp(v.Score)))
	known := false
	for _, mw := range markWeights {
		if hasMark(marks, feat, mw.key, mw.mark) {
			logit += mw.weight
			v.Reasons = append(v.Reasons, mw.reason)
			known = true
		}
	}
	if known {
		v.Score = 1 / (1 + math.Exp(-logit))
	} else if c := counts["rep:from:"+feat.From]; feat.From != "" && c[0]+c[1] == 0 {
		v.Reasons = append(v.Reasons, "sender never seen")
	}
	return v
}

func clamp(p float64) float64 { return min(max(p, 0.001), 0.999) }

// reputationTokens are trained like words, so each sender and verified domain builds a history
// with the account: a domain whose DKIM or SPF passed on ham pulls its next message towards ham.
func reputationTokens(feat Features) []string {
	var out []string
	if feat.From != "" {
		out = append(out, "rep:from:"+feat.From)
	}
	for _, d := range feat.Verified {
		out = append(out, "rep:verified:"+d)
	}
	return out
}

func hasMark(marks map[string]int, feat Features, kind string, m Mark) bool {
	switch kind {
	case "addr":
		return feat.From != "" && marks["addr:"+feat.From]&int(m) != 0
	case "dom":
		return feat.From != "" && marks["dom:"+feat.FromDomain]&int(m) != 0
	case "thread":
		for _, r := range feat.Refs {
			if marks["thread:"+r]&int(m) != 0 {
				return true
			}
		}
	}
	return false
}

type clue struct {
	token string
	prob  float64
	dist  float64 // |prob - 0.5|, the sort key
}

// combine is Robinson's method: each token's spam probability, smoothed towards 0.5 by how
// little it has been seen, then Fisher's chi-square combination of the strongest clues, both for
// spamminess and hamminess (Gary Robinson, "A Statistical Approach to the Spam Problem", 2003).
func combine(counts map[string][2]int64, nham, nspam int64, toks, more []string) (float64, []clue) {
	clues := make([]clue, 0, (len(toks)+len(more))/2)
	for _, list := range [2][]string{toks, more} {
		for _, t := range list {
			c, ok := counts[t]
			if !ok {
				continue
			}
			var g, b float64
			if nham > 0 {
				g = float64(c[0]) / float64(nham)
			}
			if nspam > 0 {
				b = float64(c[1]) / float64(nspam)
			}
			if g+b == 0 {
				continue
			}
			p := b / (g + b)
			n := float64(c[0] + c[1])
			p = (unknownStrength*unknownProb + n*p) / (unknownStrength + n)
			if d := math.Abs(p - 0.5); d >= minStrength {
				clues = append(clues, clue{t, p, d})
			}
		}
	}
	if len(clues) == 0 {
		return 0.5, nil
	}
	slices.SortFunc(clues, func(a, b clue) int {
		switch {
		case a.dist > b.dist:
			return -1
		case a.dist < b.dist:
			return 1
		}
		return strings.Compare(a.token, b.token)
	})
	clues = clues[:min(len(clues), maxClues)]
	var lnHam, lnSpam float64
	for _, c := range clues {
		lnHam += math.Log(c.prob)
		lnSpam += math.Log(1 - c.prob)
	}
	n := len(clues)
	s := 1 - chi2Q(-2*lnSpam, 2*n)
	h := 1 - chi2Q(-2*lnHam, 2*n)
	return (1 + s - h) / 2, clues
}

// chi2Q is the probability that a chi-square variable with v (even) degrees of freedom exceeds x2.
func chi2Q(x2 float64, v int) float64 {
	m := x2 / 2
	term := math.Exp(-m)
	sum := term
	for i := 1; i < v/2; i++ {
		term *= m / float64(i)
		sum += term
	}
	return min(sum, 1)
}

// tokenReasons names the three strongest clues in the header: enough for a user to see why,
// without copying the message into its own header.
func tokenReasons(clues []clue) []string {
	var out []string
	for _, c := range clues {
		if len(out) == 3 {
			break
		}
		name := headerSafe(c.token)
		if name == "" {
			continue
		}
		dir := "+"
		if c.prob < 0.5 {
			dir = "-"
		}
		out = append(out, dir+name)
	}
	if len(out) == 0 {
		out = append(out, "no known tokens")
	}
	return out
}

// headerSafe keeps a token printable in an ASCII header and short: no separators of our own
// syntax, no control bytes, no non-ASCII (the header must pass any relay, SMTPUTF8 or not).
func headerSafe(tok string) string {
	tok = strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || r == ';' || r == '(' || r == ')' || r == ',' {
			return -1
		}
		return r
	}, tok)
	if len(tok) > 40 {
		tok = tok[:40]
	}
	return tok
}
