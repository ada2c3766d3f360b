# A SCRAM-SHA-256(-PLUS) client (RFC 5802, RFC 7677) written from the RFCs with hashlib and
# hmac, driving Python's own smtplib, imaplib and poplib. Channel binding is
# tls-server-end-point (RFC 5929 §4.1), the one Python's ssl module lets a client compute.
#
# usage: scram_client.py PROTO HOST PORT TLS USER PASSWORD CASE...
#   PROTO smtp|imap|pop3; TLS starttls|implicit; CASE one of
#   scram, plus, plus-wrong-binding, wrong-password, plain
# Prints one line per case: "CASE ok", "CASE refused" or "CASE error ...". Also prints
# "mechanisms ..." as the server advertised them after TLS.
import base64, hashlib, hmac, imaplib, os, poplib, smtplib, ssl, sys

proto, host, port, mode, user, password = sys.argv[1:7]
cases = sys.argv[7:]
port = int(port)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


class Scram:
    def __init__(self, sock, password, plus, wrong_binding):
        self.password = password
        self.step = 0
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.gs2 = "p=tls-server-end-point,," if plus else "n,,"
        self.cbdata = b""
        if plus:
            self.cbdata = hashlib.sha256(sock.getpeercert(binary_form=True)).digest()
            if wrong_binding:
                self.cbdata = bytes(32)
        self.verified = False

    def __call__(self, challenge=None):
        if self.step == 0:
            self.step = 1
            name = user.replace("=", "=3D").replace(",", "=2C")
            self.bare = "n=%s,r=%s" % (name, self.nonce)
            return self.gs2 + self.bare
        if self.step == 1:
            self.step = 2
            first = challenge.decode()
            attrs = dict(a.split("=", 1) for a in first.split(","))
            assert attrs["r"].startswith(self.nonce), first
            salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
            client_key = hmac.new(salted, b"Client Key", "sha256").digest()
            stored_key = hashlib.sha256(client_key).digest()
            cb = base64.b64encode(self.gs2.encode() + self.cbdata).decode()
            without = "c=%s,r=%s" % (cb, attrs["r"])
            auth = ",".join([self.bare, first, without]).encode()
            sig = hmac.new(stored_key, auth, "sha256").digest()
            proof = bytes(a ^ b for a, b in zip(client_key, sig))
            server_key = hmac.new(salted, b"Server Key", "sha256").digest()
            self.expect = "v=" + base64.b64encode(hmac.new(server_key, auth, "sha256").digest()).decode()
            return without + ",p=" + base64.b64encode(proof).decode()
        if self.step == 2:
            self.step = 3
            if challenge.decode() != self.expect:
                raise RuntimeError("server signature does not verify: %r" % challenge)
            self.verified = True
            return ""
        raise RuntimeError("unexpected challenge %r" % challenge)


def connect():
    if proto == "smtp":
        if mode == "implicit":
            c = smtplib.SMTP_SSL(host, port, context=ctx, local_hostname="py.remote.test")
        else:
            c = smtplib.SMTP(host, port, local_hostname="py.remote.test")
            c.starttls(context=ctx)
        c.ehlo()
        return c, c.sock, c.esmtp_features.get("auth", "").split()
    if proto == "imap":
        if mode == "implicit":
            c = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
        else:
            c = imaplib.IMAP4(host, port)
            c.starttls(ssl_context=ctx)
        caps = [x[5:] for x in c.capabilities if x.startswith("AUTH=")]
        return c, c.sock, caps
    if mode == "implicit":
        c = poplib.POP3_SSL(host, port, context=ctx)
    else:
        c = poplib.POP3(host, port)
        c.stls(context=ctx)
    return c, c.sock, c.capa().get("SASL", [])


def pop3_auth(c, mech, obj):
    c._putcmd("AUTH " + mech)
    line = c._getline()[0]
    while line == b"+" or line.startswith(b"+ "):
        out = obj(base64.b64decode(line[2:]))
        c._putcmd(base64.b64encode(out.encode()).decode())
        line = c._getline()[0]
    if not line.startswith(b"+OK"):
        raise poplib.error_proto(line)


def run(case):
    c, sock, mechs = connect()
    pw = "not-" + password if case == "wrong-password" else password
    if case == "plain":
        if proto == "smtp":
            c.login(user, pw)
        elif proto == "imap":
            c.login(user, pw)
        else:
            c.user(user)
            c.pass_(pw)
        return mechs, True
    plus = case.startswith("plus")
    mech = "SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256"
    obj = Scram(sock, pw, plus, case == "plus-wrong-binding")
    try:
        if proto == "smtp":
            code, resp = c.auth(mech, obj)
        elif proto == "imap":
            c.authenticate(mech, obj)
        else:
            pop3_auth(c, mech, obj)
    except (smtplib.SMTPAuthenticationError, imaplib.IMAP4.error, poplib.error_proto) as e:
        return mechs, False
    if not obj.verified:
        raise RuntimeError("logged in without the server proving it knows the password")
    return mechs, True


for case in cases:
    try:
        mechs, ok = run(case)
        print("mechanisms", " ".join(mechs))
        print(case, "ok" if ok else "refused")
    except Exception as e:
        print(case, "error", repr(e))
