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

// TestImaplibQResync follows RFC 7162 §3.2: after ENABLE QRESYNC, SELECT (QRESYNC (uidvalidity
// modseq)) answers with VANISHED (EARLIER) for what was expunged and FETCH (UID FLAGS MODSEQ) for
// what changed since, nothing else; expunges then arrive as VANISHED, never EXPUNGE; UID FETCH
// (CHANGEDSINCE n VANISHED) reports both; a wrong UIDVALIDITY gets a plain SELECT.
func TestImaplibQResync(t *testing.T) {
	runImaplib(t, newEnv(t, nil), `
imaplib.Commands['ENABLE'] = ('AUTH', 'SELECTED')
for i in range(6):
    ok(M.append('INBOX', None, None, b'Subject: q%d\r\n\r\nx\r\n' % i))
typ, got, data = cmd(M, 'ENABLE', 'QRESYNC')
assert typ == 'OK' and M.untagged_responses.pop('ENABLED', []) == [b'QRESYNC'], data
ok(M.select('INBOX'))
validity = int(M.untagged_responses.pop('UIDVALIDITY')[0])
oks = M.untagged_responses.pop('OK', [])
last = int(re.search(rb'HIGHESTMODSEQ (\d+)', b' '.join(oks)).group(1))
ok(M.close())
B = login()
ok(B.select('INBOX'))
ok(B.store('2', '+FLAGS', '(\\Flagged)'))
ok(B.store('3,5', '+FLAGS', '(\\Deleted)'))
ok(B.expunge())
ok(B.append('INBOX', None, None, b'Subject: new\r\n\r\nx\r\n'))
typ, got, data = cmd(M, 'SELECT', 'INBOX', '(QRESYNC (%d %d))' % (validity, last))
M.state = 'SELECTED'
assert typ == 'OK', data
vanished = M.untagged_responses.pop('VANISHED', [])
assert vanished == [b'(EARLIER) 3,5'], vanished
fetches = M.untagged_responses.pop('FETCH', [])
assert len(fetches) == 2, fetches
assert fetches[0].startswith(b'2 (UID 2 FLAGS (\\Flagged') and b'MODSEQ' in fetches[0], fetches
assert fetches[1].startswith(b'5 (UID 7 ') and b'MODSEQ' in fetches[1], fetches
assert 'EXPUNGE' not in M.untagged_responses, M.untagged_responses
ok(B.store('1', '+FLAGS', '(\\Deleted)'))
ok(B.expunge())
ok(M.noop())
assert M.untagged_responses.pop('VANISHED', []) == [b'1'], 'VANISHED replaces EXPUNGE'
assert 'EXPUNGE' not in M.untagged_responses
typ, got, data = cmd(M, 'UID', 'FETCH', '1:*', '(FLAGS)', '(CHANGEDSINCE %d VANISHED)' % last)
assert typ == 'OK', data
assert M.untagged_responses.pop('VANISHED', []) == [b'(EARLIER) 1,3,5'], 'UID FETCH VANISHED'
ok(M.store('2', '+FLAGS', '(\\Deleted)'))  # UIDs 2 4 6 7 are left: seq 2 is UID 4
typ, data = M.expunge()
assert typ == 'OK' and M.untagged_responses.pop('VANISHED', []) == [b'4'] and not data[0], data
typ, got, data = cmd(M, 'SELECT', 'INBOX', '(QRESYNC (%d %d))' % (validity + 1, last))
assert typ == 'OK' and 'VANISHED' not in M.untagged_responses, M.untagged_responses
C = login()
try:
    cmd(C, 'SELECT', 'INBOX', '(QRESYNC (%d %d))' % (validity, last))
    assert False, 'QRESYNC parameter without ENABLE accepted'
except imaplib.IMAP4.error as e:
    assert 'BAD' in str(e) or 'QRESYNC' in str(e), e
`)
}
