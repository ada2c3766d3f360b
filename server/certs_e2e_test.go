package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"mailstead/acme/acmetest"
	"mailstead/mailtest"
)

// TestCertificatesFromACME: with Pebble as the CA, the server orders a certificate for its
// hostname (TLS-ALPN-01 on its 443) and every TLS listener presents it: SMTP STARTTLS and 465,
// IMAP STARTTLS and 993, POP3 STLS and 995, and HTTPS, each verifying against Pebble's root,
// with and without SNI.
func TestCertificatesFromACME(t *testing.T) {
	zone := mailtest.NewDNSZone(t)
	zone.Add("remote.test. 300 IN A 127.0.0.1")
	ip := mailtest.RandomLoopbackIP()
	zone.Add("mail.example.test. 300 IN A " + ip)
	offset := mailtest.DefaultPortOffset + 3000
	ca := acmetest.Start(t, acmetest.Options{HTTPPort: 80 + offset, TLSPort: 443 + offset, DNSServer: zone.Addr()})
	srv := mailtest.Start(t, mailtest.Options{IP: ip, PortOffset: offset, DNS: zone.Addr(), ACMEClient: ca.Client,
		Settings: map[string]string{"acme.directory": ca.DirectoryURL}})
	opts := srv.Opts

	verify := func(state tls.ConnectionState) error {
		leaf := state.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range state.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Roots, Intermediates: inter, DNSName: "mail.example.test"})
		return err
	}
	implicit := func(port int, sni string) error {
		c, err := tls.Dial("tcp", opts.Addr(port), &tls.Config{InsecureSkipVerify: true, ServerName: sni})
		if err != nil {
			return err
		}
		defer c.Close()
		return verify(c.ConnectionState())
	}
	// Wait for the order to complete: the hostname's certificate verifies against Pebble's root.
	deadline := time.Now().Add(90 * time.Second)
	for implicit(993, "mail.example.test") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no ACME certificate after 90 s: %v", implicit(993, "mail.example.test"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, port := range []int{465, 993, 995} {
		for _, sni := range []string{"mail.example.test", ""} { // MTAs and old clients send no SNI
			if err := implicit(port, sni); err != nil {
				t.Errorf("port %d, SNI %q: %v", port, sni, err)
			}
		}
	}
	upgrade := []struct {
		port         int
		hello, start string
	}{
		{25, "EHLO client.test\r\n", "STARTTLS\r\n"},
		{587, "EHLO client.test\r\n", "STARTTLS\r\n"},
		{143, "", "a STARTTLS\r\n"},
		{110, "", "STLS\r\n"},
	}
	for _, u := range upgrade {
		if err := starttls(opts.Addr(u.port), u.hello, u.start, verify); err != nil {
			t.Errorf("port %d: %v", u.port, err)
		}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Roots, ServerName: "mail.example.test"}}}
	resp, err := client.Get("https://" + opts.Addr(443) + "/")
	if err != nil {
		t.Fatalf("HTTPS with the issued certificate: %v", err)
	}
	resp.Body.Close()
}

// starttls speaks a protocol's greeting and upgrade command in plain text, then checks the
// certificate the server presents.
func starttls(addr, hello, start string, verify func(tls.ConnectionState) error) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	readReply := func() (string, error) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return line, err
			}
			if len(line) < 4 || line[3] != '-' { // SMTP multi-line replies
				return line, nil
			}
		}
	}
	if _, err := readReply(); err != nil { // greeting
		return err
	}
	if hello != "" {
		c.Write([]byte(hello))
		if _, err := readReply(); err != nil {
			return err
		}
	}
	c.Write([]byte(start))
	line, err := readReply()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") && !strings.HasPrefix(line, "+OK") && !strings.HasPrefix(line, "a OK") {
		return &net.OpError{Op: "starttls", Err: context.Canceled, Addr: nil, Net: line}
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return err
	}
	return verify(tc.ConnectionState())
}
