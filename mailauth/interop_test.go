package mailauth_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mailstead/mailauth"
)

// dkimpyVerify verifies every DKIM-Signature of a message with dkimpy
// (Debian python3-dkim), giving it the key records directly instead of DNS.
const dkimpyVerify = `
import json, sys
import dkim
msg = open(sys.argv[1], 'rb').read()
records = json.load(open(sys.argv[2]))
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    value = records.get(name.rstrip('.'))
    return value.encode() if value is not None else None
d = dkim.DKIM(msg)
n = len([h for h in d.headers if h[0].lower() == b'dkim-signature'])
ok = n > 0
for i in range(n):
    res = d.verify(idx=i, dnsfunc=dnsfunc)
    print('signature', i, d.domain.decode(), d.selector.decode(), 'pass' if res else 'FAIL')
    ok = ok and res
sys.exit(0 if ok else 1)
`

// TestSignVerifiesWithDkimpy (interop): a message signed by Sign, with RSA
// and Ed25519, verifies with dkimpy, an implementation nobody here wrote.
func TestSignVerifiesWithDkimpy(t *testing.T) {
	if os.Getenv("MAILSTEAD_INTEROP") != "1" {
		t.Skip("interop test: set MAILSTEAD_INTEROP=1 (needs Debian python3-dkim)")
	}
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import dkim, nacl").CombinedOutput(); err != nil {
		t.Fatalf("dkimpy missing (apt-get install python3-dkim): %v\n%s", err, out)
	}
	k := signingKeys(t)
	msg := message("alice@b.test", "interop", "Hello dkimpy.\r\n\r\nSecond paragraph with trailing space   \r\n",
		"Cc: Carol <carol@b.test>", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8")
	signed, err := mailauth.Sign(msg, "b.test", k.rsa, k.ed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	records, _ := json.Marshal(map[string]string{
		mailauth.DKIMRecordName(mailauth.SelectorRSA, "b.test"):     k.rsaTXT,
		mailauth.DKIMRecordName(mailauth.SelectorEd25519, "b.test"): k.edTXT,
	})
	for name, data := range map[string][]byte{"msg.eml": signed, "records.json": records, "verify.py": []byte(dkimpyVerify)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(python, filepath.Join(dir, "verify.py"), filepath.Join(dir, "msg.eml"), filepath.Join(dir, "records.json")).CombinedOutput()
	t.Logf("dkimpy:\n%s", out)
	if err != nil {
		t.Fatalf("dkimpy rejects our signatures: %v", err)
	}
	if strings.Count(string(out), " pass") != 2 {
		t.Errorf("want 2 passing signatures")
	}

	// And the other way round: tampering must be caught by dkimpy too, or
	// the test above proves nothing.
	tampered := []byte(strings.Replace(string(signed), "Hello dkimpy.", "Hello dkimpy!", 1))
	if err := os.WriteFile(filepath.Join(dir, "msg.eml"), tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(python, filepath.Join(dir, "verify.py"), filepath.Join(dir, "msg.eml"), filepath.Join(dir, "records.json")).CombinedOutput(); err == nil {
		t.Errorf("dkimpy accepted a tampered message:\n%s", out)
	}
}

// TestOverSigningWithDkimpy (interop): dkimpy verifies our signature on a message without
// Reply-To, Cc or Content-Type, and fails it once any of them is added (RFC 6376 §8.15), as a
// forwarder or a spammer replaying the message might.
func TestOverSigningWithDkimpy(t *testing.T) {
	if os.Getenv("MAILSTEAD_INTEROP") != "1" {
		t.Skip("interop test: set MAILSTEAD_INTEROP=1 (needs Debian python3-dkim)")
	}
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import dkim, nacl").CombinedOutput(); err != nil {
		t.Fatalf("dkimpy missing (apt-get install python3-dkim): %v\n%s", err, out)
	}
	k := signingKeys(t)
	signed, err := mailauth.Sign(message("alice@b.test", "plain", "No Cc, no Reply-To, no MIME.\r\n"), "b.test", k.rsa, k.ed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	records, _ := json.Marshal(map[string]string{
		mailauth.DKIMRecordName(mailauth.SelectorRSA, "b.test"):     k.rsaTXT,
		mailauth.DKIMRecordName(mailauth.SelectorEd25519, "b.test"): k.edTXT,
	})
	for name, data := range map[string][]byte{"records.json": records, "verify.py": []byte(dkimpyVerify)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, add string
		pass      bool
	}{
		{"as signed", "", true},
		{"Reply-To added", "Reply-To: evil@evil.test", false},
		{"Cc added", "Cc: evil@evil.test", false},
		{"Content-Type added", "Content-Type: text/html", false},
	}
	for _, tt := range tests {
		msg := signed
		if tt.add != "" {
			msg = addHeader(signed, tt.add)
		}
		file := filepath.Join(dir, "msg.eml")
		if err := os.WriteFile(file, msg, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(python, filepath.Join(dir, "verify.py"), file, filepath.Join(dir, "records.json")).CombinedOutput()
		if pass := err == nil; pass != tt.pass {
			t.Errorf("%s: dkimpy pass=%v, want %v:\n%s", tt.name, pass, tt.pass, out)
		}
	}
}
