package imap

import "testing"

// TestImaplibCondStore follows RFC 7162 §3.1's examples: SELECT (CONDSTORE) reports
// HIGHESTMODSEQ, FETCH MODSEQ and (CHANGEDSINCE) return only what changed, STORE
// (UNCHANGEDSINCE) refuses messages another session changed with OK [MODIFIED], SEARCH MODSEQ
// adds (MODSEQ n), STATUS HIGHESTMODSEQ, and once enabled every FLAGS response carries MODSEQ,
// unsolicited ones too.
func TestImaplibCondStore(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
imaplib.Commands['ENABLE'] = ('AUTH', 'SELECTED')
for i in range(3):
    ok(M.append('INBOX', None, None, b'Subject: c%d\r\n\r\nx\r\n' % i))
def modseq(line):
    m = re.search(rb'MODSEQ \(?(\d+)', line)
    return int(m.group(1)) if m else None
typ, got, data = cmd(M, 'SELECT', 'INBOX', '(CONDSTORE)')
assert typ == 'OK', data
M.state = 'SELECTED'  # imaplib only tracks its own select()
oks = M.untagged_responses.pop('OK', [])
hi = [x for x in oks if b'HIGHESTMODSEQ' in x]
assert hi, oks
start = int(re.search(rb'HIGHESTMODSEQ (\d+)', hi[0]).group(1))
data = ok(M.fetch('1:*', '(UID MODSEQ)'))
seqs = [modseq(d) for d in data]
assert all(s is not None and s <= start for s in seqs), data
B = login()
ok(B.select('INBOX'))
ok(B.store('2', '+FLAGS', '(\\Flagged)'))
data = ok(M.fetch('1:*', '(FLAGS) (CHANGEDSINCE %d)' % start))
# Only message 2 changed; the unsolicited update of B's change may follow the FETCH result.
assert data and all(d.startswith(b'2 (') and b'\\Flagged' in d and modseq(d) > start for d in data), data
typ, got, data = cmd(M, 'STORE', '2', '(UNCHANGEDSINCE %d)' % start, '+FLAGS', '(\\Seen)')
assert typ == 'OK' and b'[MODIFIED 2]' in data[-1], (typ, data)
typ, got, data = cmd(M, 'STORE', '1', '(UNCHANGEDSINCE %d)' % start, '+FLAGS', '(\\Seen)')
assert typ == 'OK' and b'MODIFIED' not in data[-1], (typ, data)
fetches = M.untagged_responses.pop('FETCH', [])
assert any(f.startswith(b'1 (') and b'\\Seen' in f and modseq(f) for f in fetches), fetches
typ, got, data = cmd(M, 'SEARCH', 'MODSEQ', str(start + 1))
assert typ == 'OK' and re.match(rb'^1 2 \(MODSEQ \d+\)$', got[0]), got
typ, got, data = cmd(M, 'SEARCH', 'MODSEQ', '"/flags/\\\\seen"', 'all', str(start + 1))
assert typ == 'OK' and got[0].startswith(b'1 2'), got
st = ok(M.status('Archive', '(HIGHESTMODSEQ MESSAGES)'))[0].decode()
assert 'HIGHESTMODSEQ ' in st, st
ok(B.store('3', '+FLAGS', '($Later)'))
ok(M.noop())
fetches = M.untagged_responses.pop('FETCH', [])
assert any(f.startswith(b'3 (') and b'$Later' in f and modseq(f) for f in fetches), fetches
fetches = ok(M.store('3', '+FLAGS.SILENT', '(\\Answered)'))
assert fetches and b'FLAGS' not in fetches[-1] and modseq(fetches[-1]), ('SILENT still reports MODSEQ', fetches)
C = login()
typ, got, data = cmd(C, 'ENABLE', 'CONDSTORE')
got = C.untagged_responses.pop('ENABLED', [])
assert typ == 'OK' and got == [b'CONDSTORE'], (typ, got)
ok(C.select('INBOX'))
assert modseq(ok(C.fetch('1', '(FLAGS)'))[0]), 'FLAGS carry MODSEQ once CONDSTORE is enabled'
P = login()
ok(P.select('INBOX'))
assert modseq(ok(P.fetch('1', '(FLAGS)'))[0]) is None, 'no MODSEQ before CONDSTORE is enabled'
try:
    cmd(P, 'FETCH', '1', '(FLAGS)', '(FROB 1)')
    assert False, 'unknown FETCH modifier accepted'
except imaplib.IMAP4.error as e:
    assert 'BAD' in str(e) or 'modifier' in str(e), e
`)
}
