package pop3test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireTool skips t unless MAILSTEAD_INTEROP=1 and then returns the path of
// tool, failing t when the tool is missing (a missing tool is a CI failure,
// not a skip).
func RequireTool(t testing.TB, tool string) string {
	t.Helper()
	if os.Getenv("MAILSTEAD_INTEROP") != "1" {
		t.Skipf("interop test: set MAILSTEAD_INTEROP=1 to run (needs %s)", tool)
	}
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("MAILSTEAD_INTEROP=1 but %s is missing: %v", tool, err)
	}
	return path
}

// Target is a POP3 server an interop client connects to.
type Target struct {
	// Addr is host:port on loopback.
	Addr string
	// ImplicitTLS selects TLS from the first byte (port 995); otherwise the
	// client connects in plain text and upgrades with STLS (port 110).
	ImplicitTLS bool
	// CAFile is a PEM file with the CA that signed the server's certificate.
	CAFile string
	// ServerName is the name the certificate carries for Addr's host when
	// the client checks names against a host name; default "localhost".
	ServerName string
	// User and Password log in.
	User, Password string
}

func (t Target) serverName() string {
	if t.ServerName == "" {
		return "localhost"
	}
	return t.ServerName
}

const poplibScript = `
import base64, json, poplib, ssl, sys

cfg = json.load(sys.stdin)
host, port = cfg["host"], int(cfg["port"])
class Context(ssl.SSLContext):
    # poplib checks the certificate against the host it dialled (an IP here); check it against
    # the server's name instead, as a client that resolved that name would.
    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname=cfg["servername"], **kwargs)

ctx = Context(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(cafile=cfg["cafile"])
if cfg["implicit"]:
    p = poplib.POP3_SSL(host, port, context=ctx, timeout=30)
else:
    p = poplib.POP3(host, port, timeout=30)
    p.stls(context=ctx)
caps = p.capa()
for c in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES", "PIPELINING"):
    assert c in caps, ("capability missing", c, caps)
assert "STLS" not in caps, ("STLS offered under TLS", caps)
p.user(cfg["user"])
p.pass_(cfg["password"])

want = [base64.b64decode(m) for m in cfg["messages"]]
count, size = p.stat()
assert count == len(want), ("STAT count", count, len(want))
assert size == sum(len(m) for m in want), ("STAT size", size, sum(len(m) for m in want))

resp, listing, _ = p.list()
assert listing == [b"%d %d" % (i + 1, len(m)) for i, m in enumerate(want)], ("LIST", listing)
for i, m in enumerate(want):
    assert p.list(i + 1) == b"+OK %d %d" % (i + 1, len(m)), ("LIST n", i + 1)

resp, uidls, _ = p.uidl()
ids = [u.split(b" ", 1)[1].decode() for u in uidls]
assert [u.split(b" ", 1)[0] for u in uidls] == [b"%d" % (i + 1) for i in range(len(want))], uidls
assert len(set(ids)) == len(ids), ("UIDL not unique", ids)
if cfg["uidls"]:
    assert ids == cfg["uidls"], ("UIDL values", ids, cfg["uidls"])
for i in range(len(want)):
    assert p.uidl(i + 1).split()[1:] == [b"%d" % (i + 1), ids[i].encode()], ("UIDL n", i + 1)

def lines_of(raw):
    assert raw.endswith(b"\r\n"), "expected message must end in CRLF"
    return raw[:-2].split(b"\r\n")

for i, m in enumerate(want):
    resp, lines, octets = p.retr(i + 1)
    assert resp.split()[1] == b"%d" % len(m), ("RETR octet count", resp, len(m))
    got = b"\r\n".join(lines) + b"\r\n"
    assert got == m, ("RETR content", i + 1, got, m)
    ls = lines_of(m)
    hdr = ls.index(b"") if b"" in ls else len(ls) - 1
    for n in (0, 1, 3):
        resp, lines, _ = p.top(i + 1, n)
        assert lines == ls[:hdr + 1 + n], ("TOP", i + 1, n, lines, ls[:hdr + 1 + n])

if cfg["delete"]:
    for i in range(len(want)):
        p.dele(i + 1)
    try:
        p.retr(1)
        raise AssertionError("RETR of a deleted message succeeded")
    except poplib.error_proto:
        pass
print(p.quit().decode())
`

// CheckPoplib logs in with Python's poplib (/usr/bin/python3) and checks
// STAT, LIST, UIDL, RETR and TOP against want, the messages in the maildrop
// in order, each ending in CRLF. uidls, when not nil, are the UIDL values
// expected. With del it marks every message deleted and QUITs, so the caller
// can check the maildrop is empty afterwards. Needs Debian package python3.
func CheckPoplib(t testing.TB, target Target, want [][]byte, uidls []string, del bool) {
	t.Helper()
	python := RequireTool(t, "/usr/bin/python3")
	host, port, err := net.SplitHostPort(target.Addr)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]string, len(want))
	for i, m := range want {
		msgs[i] = base64.StdEncoding.EncodeToString(m)
	}
	if uidls == nil {
		uidls = []string{}
	}
	cfg, err := json.Marshal(map[string]any{
		"host": host, "port": port, "implicit": target.ImplicitTLS, "cafile": target.CAFile, "servername": target.serverName(),
		"user": target.User, "password": target.Password, "messages": msgs, "uidls": uidls, "delete": del,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", poplibScript)
	cmd.Stdin = bytes.NewReader(cfg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("poplib against %s (implicit TLS %v): %v\n%s", target.Addr, target.ImplicitTLS, err, out)
	}
	t.Logf("poplib: %s", strings.TrimSpace(string(out)))
}

// FetchmailResult is what one fetchmail run delivered.
type FetchmailResult struct {
	// Delivered is every message fetchmail handed to its MDA, concatenated,
	// exactly as received.
	Delivered []byte
	// ExitCode is fetchmail's exit status: 0 mail fetched, 1 no mail.
	ExitCode int
	// Output is fetchmail's verbose log.
	Output string
}

// Fetchmail runs fetchmail once against target, with TLS checked against
// target.CAFile and names checked against target.ServerName (localhost by
// default), delivering every message through an MDA that appends it
// unmodified to a file (no Received header, no CR stripping, no address
// rewriting). keep leaves messages on the server; otherwise fetchmail
// deletes them. stateDir holds fetchmail's UIDL state between runs (keep
// mode fetches each message once); pass the same t.TempDir() to repeated
// calls. Needs Debian package fetchmail.
func Fetchmail(t testing.TB, target Target, keep bool, stateDir string) FetchmailResult {
	t.Helper()
	bin := RequireTool(t, "fetchmail")
	host, port, err := net.SplitHostPort(target.Addr)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(stateDir, fmt.Sprintf("delivered-%d", time.Now().UnixNano()))
	if err := os.WriteFile(out, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(out, 0o666) // the MDA may run as another user when fetchmail runs as root
	tlsOpts := "sslproto tls1.2+ sslcertck sslcertfile " + quoteRC(target.CAFile) + " sslcommonname " + quoteRC(target.serverName())
	if target.ImplicitTLS {
		tlsOpts = "ssl " + tlsOpts
	}
	// Keep mode tracks seen messages by UIDL, so each is fetched once (and
	// fetchmail then uses TOP n <huge> instead of RETR); delete mode fetches all.
	keepOpt, uidlOpt := "nokeep fetchall", ""
	if keep {
		keepOpt, uidlOpt = "keep", " uidl"
	}
	rc := fmt.Sprintf("set no bouncemail\nset invisible\n"+
		"poll %s via %s protocol pop3 port %s auth password timeout 30%s\n"+
		"  user %s password %s is %s here\n"+
		"  %s %s no rewrite no stripcr no forcecr no mimedecode\n"+
		"  mda %s\n",
		target.serverName(), host, port, uidlOpt,
		quoteRC(target.User), quoteRC(target.Password), quoteRC(currentUser()),
		tlsOpts, keepOpt, quoteRC("cat >> "+out))
	rcFile := filepath.Join(stateDir, "fetchmailrc")
	if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", rcFile, "--nodetach", "--nosyslog", "-v",
		"--idfile", filepath.Join(stateDir, "fetchids"),
		"--pidfile", filepath.Join(stateDir, "fetchmail.pid"))
	// FETCHMAILUSER: as root, fetchmail runs the MDA as this user.
	cmd.Env = append(os.Environ(), "HOME="+stateDir, "FETCHMAILHOME="+stateDir, "LC_ALL=C", "FETCHMAILUSER="+currentUser())
	logOut, err := cmd.CombinedOutput()
	res := FetchmailResult{Output: string(logOut)}
	if exitErr, ok := err.(*exec.ExitError); ok {
		res.ExitCode = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("fetchmail: %v", err)
	}
	if res.ExitCode > 1 {
		t.Fatalf("fetchmail against %s (implicit TLS %v) exited %d:\n%s", target.Addr, target.ImplicitTLS, res.ExitCode, logOut)
	}
	var sent []string
	for _, l := range strings.Split(res.Output, "\n") {
		if _, cmd, ok := strings.Cut(l, "POP3> "); ok {
			sent = append(sent, cmd)
		}
	}
	t.Logf("fetchmail (keep %v) exited %d after sending: %s", keep, res.ExitCode, strings.Join(sent, "; "))
	res.Delivered, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// CheckFetchmail runs Fetchmail and fails t unless it delivered exactly want,
// byte for byte, in order. Each message in want must end in CRLF.
func CheckFetchmail(t testing.TB, target Target, want [][]byte, keep bool, stateDir string) {
	t.Helper()
	res := Fetchmail(t, target, keep, stateDir)
	wantAll := bytes.Join(want, nil)
	if !bytes.Equal(res.Delivered, wantAll) {
		t.Fatalf("fetchmail delivered %d octets, want %d:\n got %q\nwant %q\nlog:\n%s",
			len(res.Delivered), len(wantAll), res.Delivered, wantAll, res.Output)
	}
	if len(want) > 0 && res.ExitCode != 0 {
		t.Fatalf("fetchmail exited %d after fetching:\n%s", res.ExitCode, res.Output)
	}
}

func quoteRC(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}
