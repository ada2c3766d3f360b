package imap

import (
	"strings"
	"testing"
)

// The literal and line rules of the IMAP input (third_party/go-imap, PATCHES.md): each case is
// one exchange, then a NOOP shows the session is still in step.
func TestLiteralAndLineLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageSize = 1000 })
	r := loggedInRaw(t, e)
	for _, tc := range []struct {
		name, send, tag, want string
		continuation          bool // the literal is taken: a continuation comes first
	}{
		// An announced literal over the limit is answered at once, with no continuation.
		{"huge literal in LOGIN", "a LOGIN {999999999}\r\n", "a", "a NO [TOOBIG]", false},
		{"big literal in SELECT", "b SELECT {5000}\r\n", "b", "b NO [TOOBIG]", false},
		// A command that fails right after its literal has the literal and its CRLF consumed.
		{"error after a literal", "c SELECT {7}\r\nnothere\r\n", "c", "c NO", true},
		{"syntax error after a literal", "d STATUS {5}\r\nINBOX (FROB)\r\n", "d", "d BAD", true},
		{"command cut short after a literal", "g LOGIN {5}\r\nalice\r\n", "g", "g BAD", true},
		{"literal at the end of a command that fails", "h RENAME nothere {3}\r\nnew\r\n", "h", "h NO", true},
		// A non-synchronising literal over APPENDLIMIT arrives anyway: it is read through, not
		// parsed as commands.
		{"non-synchronising literal over the limit", "i APPEND INBOX {2000+}\r\n" +
			strings.Repeat("j CREATE Injected\r\n", 100) + strings.Repeat("x", 100) + "\r\n", "i", "i NO [TOOBIG]", false},
		// An over-long line is refused without parsing its remainder as commands.
		{"over-long STORE line", "e STORE 1 +FLAGS (" + strings.Repeat("\\Seen ", 10<<10) + ")\r\n", "e", "e BAD [TOOBIG]", false},
		{"over-long line hiding a command", "f NOOP " + strings.Repeat("x", 60<<10) + " g CREATE Injected\r\n", "f", "f BAD", false},
	} {
		r.send(tc.send)
		lines := r.untilTagged(tc.tag)
		if got := lines[len(lines)-1]; !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, lines, tc.want)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "+") && !tc.continuation {
				t.Errorf("%s: a continuation was sent: %v", tc.name, lines)
			}
		}
		if tagged, all := r.reply("n", "NOOP"); !strings.HasPrefix(tagged, "n OK") {
			t.Fatalf("after %s: %s", tc.name, all)
		}
	}
	if tagged, all := r.reply("l", `LIST "" Injected`); !strings.HasPrefix(tagged, "l OK") || strings.Contains(all, "Injected") {
		t.Errorf("the tail of an over-long line was run as a command: %s", all)
	}
}
