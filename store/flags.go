package store

import "strings"

// systemFlags are the RFC 9051 §2.3.2 flags a client may set, in their canonical case.
var systemFlags = map[string]string{
	`\seen`:     `\Seen`,
	`\answered`: `\Answered`,
	`\flagged`:  `\Flagged`,
	`\deleted`:  `\Deleted`,
	`\draft`:    `\Draft`,
}

// CanonicalFlags returns flags with system flags in canonical case, keywords as first given,
// duplicates (compared case-insensitively, RFC 9051 §2.3.2) and \Recent removed, in stable order.
func CanonicalFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		if f == "" {
			continue
		}
		low := strings.ToLower(f)
		if low == `\recent` || seen[low] {
			continue
		}
		seen[low] = true
		if c, ok := systemFlags[low]; ok {
			f = c
		}
		out = append(out, f)
	}
	return out
}

// parseFlags splits the stored flag column.
func parseFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}
