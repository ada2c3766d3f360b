package queue

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// reply is one SMTP reply: its code and its text (lines joined by "; "), enhanced status code
// included when the server sent one (RFC 3463).
type reply struct {
	code int
	text string
}

func (r reply) String() string { return strconv.Itoa(r.code) + " " + r.text }

// enhanced returns the reply's RFC 3463 status code, or one made from its class.
func (r reply) enhanced() string {
	if f, _, ok := strings.Cut(r.text, " "); ok && isEnhancedCode(f) && f[0] == byte('0'+r.code/100) {
		return f
	}
	if r.code >= 500 {
		return "5.0.0"
	}
	return "4.0.0"
}

func isEnhancedCode(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if _, err := strconv.Atoi(p); err != nil || len(p) > 3 {
			return false
		}
	}
	return true
}

// client is our side of one outbound SMTP connection. go-smtp's client greets as "localhost",
// has no opportunistic STARTTLS and no PIPELINING, so outbound mail speaks SMTP itself here.
type client struct {
	nc      net.Conn
	tp      *textproto.Conn
	ext     map[string]string // EHLO keywords, upper-case, with their parameters
	timeout time.Duration
	tls     *tls.ConnectionState
	// verified is true when the TLS certificate was valid for the name we meant to reach.
	verified bool
}

func newClient(nc net.Conn, timeout time.Duration) *client {
	c := &client{nc: nc, timeout: timeout}
	c.setConn(nc)
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	return c
}

func (c *client) setConn(nc net.Conn) {
	c.nc = nc
	c.tp = textproto.NewConn(nc)
}

func (c *client) close() error { return c.nc.Close() }

// read reads one reply. A reply that is not SMTP at all is an error.
func (c *client) read() (reply, error) {
	c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		var pe textproto.ProtocolError
		if errors.As(err, &pe) || code == 0 {
			return reply{}, fmt.Errorf("reading reply: %w", err)
		}
	}
	return reply{code: code, text: strings.ReplaceAll(msg, "\n", "; ")}, nil
}

// cmd sends one command line and reads its reply.
func (c *client) cmd(format string, args ...any) (reply, error) {
	if err := c.write(format, args...); err != nil {
		return reply{}, err
	}
	return c.read()
}

func (c *client) write(format string, args ...any) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.tp.PrintfLine(format, args...); err != nil {
		return fmt.Errorf("sending command: %w", err)
	}
	return nil
}

// hello sends EHLO, falling back to HELO for servers that do not know it (RFC 5321 §4.1.1.1),
// and records the extensions offered.
func (c *client) hello(name string) (reply, error) {
	r, err := c.cmd("EHLO %s", name)
	if err != nil {
		return r, err
	}
	c.ext = map[string]string{}
	if r.code == 250 {
		for i, line := range strings.Split(r.text, "; ") {
			if i == 0 {
				continue // the greeting line names the server
			}
			k, v, _ := strings.Cut(line, " ")
			c.ext[strings.ToUpper(k)] = v
		}
		return r, nil
	}
	if r.code >= 500 {
		r, err = c.cmd("HELO %s", name)
	}
	return r, err
}

func (c *client) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// maxSize is the server's SIZE limit (RFC 1870), 0 when it states none.
func (c *client) maxSize() int64 {
	v, ok := c.ext["SIZE"]
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n
}

// startTLS upgrades the connection (RFC 3207). cfg decides how strictly the certificate is
// checked; verified reports whether it was valid for cfg.ServerName either way.
func (c *client) startTLS(cfg *tls.Config, strict bool) error {
	r, err := c.cmd("STARTTLS")
	if err != nil {
		return err
	}
	if r.code != 220 {
		return fmt.Errorf("STARTTLS refused: %s", r)
	}
	return c.handshake(cfg, strict)
}

func (c *client) handshake(cfg *tls.Config, strict bool) error {
	cfg = cfg.Clone()
	name := cfg.ServerName
	roots := cfg.RootCAs
	verified := false
	// Verification happens here rather than in crypto/tls so that opportunistic TLS (RFC 7435)
	// can still encrypt to a server whose certificate does not check out, while knowing it.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verifyChain(cs, name, roots)
		verified = err == nil
		if strict && err != nil {
			return err
		}
		return nil
	}
	tc := tls.Client(c.nc, cfg)
	tc.SetDeadline(time.Now().Add(c.timeout))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.tls, c.verified = &st, verified
	c.setConn(tc)
	return nil
}

// auth logs in with PLAIN (RFC 4616) or, when only that is offered, LOGIN. Only ever called on a
// TLS connection.
func (c *client) auth(user, pass string) error {
	mechs := strings.Fields(strings.ToUpper(c.ext["AUTH"]))
	has := func(m string) bool {
		for _, x := range mechs {
			if x == m {
				return true
			}
		}
		return false
	}
	var r reply
	var err error
	switch {
	case has("PLAIN") || !has("LOGIN"):
		r, err = c.cmd("AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
	default:
		if r, err = c.cmd("AUTH LOGIN"); err == nil && r.code == 334 {
			if r, err = c.cmd("%s", base64.StdEncoding.EncodeToString([]byte(user))); err == nil && r.code == 334 {
				r, err = c.cmd("%s", base64.StdEncoding.EncodeToString([]byte(pass)))
			}
		}
	}
	if err != nil {
		return err
	}
	if r.code != 235 {
		return &replyError{r, "authentication at the smarthost failed"}
	}
	return nil
}

// replyError is an SMTP reply that ended a step.
type replyError struct {
	r    reply
	what string
}

func (e *replyError) Error() string { return e.what + ": " + e.r.String() }

// transaction is one MAIL/RCPT/DATA exchange carrying one message to several recipients.
type transaction struct {
	from       string
	mailParams []string
	rcpts      []string
	rcptParams [][]string // per recipient, index-aligned with rcpts; nil means none
	body       io.Reader  // the message, read once from its first byte
	size       int64      // of body
}

// rcptCommand is the RCPT command for recipient i with its parameters.
func (t transaction) rcptCommand(i int) string {
	cmd := "RCPT TO:<" + t.rcpts[i] + ">"
	if i < len(t.rcptParams) && len(t.rcptParams[i]) > 0 {
		cmd += " " + strings.Join(t.rcptParams[i], " ")
	}
	return cmd
}

// result holds each reply of a transaction: MAIL's, one per RCPT (in order), and DATA's final
// reply (zero when DATA was not reached).
type result struct {
	mail  reply
	rcpts []reply
	data  reply
}

// send runs a transaction, pipelined (RFC 2920) when the server offers PIPELINING. An error means
// the connection failed part way; the replies read until then are in the result.
func (c *client) send(t transaction) (result, error) {
	var res result
	mail := "MAIL FROM:<" + t.from + ">"
	if len(t.mailParams) > 0 {
		mail += " " + strings.Join(t.mailParams, " ")
	}
	pipelining := c.has("PIPELINING")
	if pipelining {
		// MAIL, every RCPT and DATA go in one write; replies come back in order.
		c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
		w := c.tp.W
		fmt.Fprintf(w, "%s\r\n", mail)
		for i := range t.rcpts {
			fmt.Fprintf(w, "%s\r\n", t.rcptCommand(i))
		}
		io.WriteString(w, "DATA\r\n")
		if err := w.Flush(); err != nil {
			return res, fmt.Errorf("sending commands: %w", err)
		}
	}
	var err error
	if !pipelining {
		if err := c.write("%s", mail); err != nil {
			return res, err
		}
	}
	if res.mail, err = c.read(); err != nil {
		return res, err
	}
	accepted := 0
	for i := range t.rcpts {
		if !pipelining {
			if res.mail.code/100 != 2 {
				break
			}
			if err := c.write("%s", t.rcptCommand(i)); err != nil {
				return res, err
			}
		}
		r, err := c.read()
		if err != nil {
			return res, err
		}
		res.rcpts = append(res.rcpts, r)
		if r.code/100 == 2 {
			accepted++
		}
	}
	if !pipelining {
		if accepted == 0 {
			return res, nil
		}
		if err := c.write("DATA"); err != nil {
			return res, err
		}
	}
	dr, err := c.read()
	if err != nil {
		return res, err
	}
	if dr.code != 354 {
		if accepted > 0 {
			res.data = dr
		}
		return res, nil
	}
	if accepted == 0 || res.mail.code/100 != 2 {
		// RFC 2920 §3.1: the server said 354 though nothing was accepted; end the empty message.
		if err := c.write("."); err != nil {
			return res, err
		}
		_, err := c.read()
		return res, err
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout + time.Duration(t.size/1024)*time.Second))
	dw := c.tp.DotWriter() // dot-stuffs (RFC 5321 §4.5.2) across the pieces it is given
	buf := make([]byte, 32<<10)
	for {
		n, rerr := t.body.Read(buf)
		if n > 0 {
			if _, err := dw.Write(buf[:n]); err != nil {
				return res, fmt.Errorf("sending message: %w", err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			// The message cannot be finished: end the session without the final dot, so
			// the far side never takes a truncated message as complete.
			c.close()
			return res, fmt.Errorf("reading the queued message: %w", rerr)
		}
	}
	if err := dw.Close(); err != nil {
		return res, fmt.Errorf("sending message: %w", err)
	}
	if res.data, err = c.read(); err != nil {
		return res, err
	}
	return res, nil
}

// quit ends the session politely; its outcome does not matter.
func (c *client) quit() {
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	c.cmd("QUIT")
	c.close()
}

// greeting reads the server's 220 (RFC 5321 §4.2).
func (c *client) greeting() (reply, error) {
	return c.read()
}
