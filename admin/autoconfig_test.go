package admin

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestMozillaAutoconfig(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for _, path := range []string{"/mail/config-v1.1.xml?emailaddress=someone%40example.test",
		"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=someone%40example.test", "/mail/config-v1.1.xml"} {
		resp, body := e.do(c, "GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		var cfg mozClientConfig
		if err := xml.Unmarshal([]byte(body), &cfg); err != nil {
			t.Fatalf("%s: not XML: %v\n%s", path, err, body)
		}
		in, out := cfg.Provider.Incoming, cfg.Provider.Outgoing
		if cfg.Provider.Domain != "example.test" || len(in) != 4 || len(out) != 2 {
			t.Fatalf("%s: %+v", path, cfg)
		}
		want := []struct {
			s    mozServer
			port int
			sock string
		}{{in[0], testPorts.IMAPS, "SSL"}, {in[1], testPorts.IMAP, "STARTTLS"}, {in[2], testPorts.POP3S, "SSL"},
			{in[3], testPorts.POP3, "STARTTLS"}, {out[0], testPorts.Submissions, "SSL"}, {out[1], testPorts.Submission, "STARTTLS"}}
		for _, w := range want {
			if w.s.Port != w.port || w.s.SocketType != w.sock || w.s.Hostname != "mail.example.test" || w.s.Username != "%EMAILADDRESS%" {
				t.Errorf("%s: server %+v, want port %d %s", path, w.s, w.port, w.sock)
			}
		}
	}
	if resp, _ := e.do(c, "GET", "/mail/config-v1.1.xml?emailaddress=x%40other.test", nil); resp.StatusCode != 404 {
		t.Errorf("foreign domain: %d", resp.StatusCode)
	}
	// Over plain HTTP too (port 80), which Thunderbird tries first.
	h := e.adm.HTTPHandler(http.NotFoundHandler())
	rec := newRecorder()
	h.ServeHTTP(rec, mustReq("GET", "http://autoconfig.example.test/mail/config-v1.1.xml"))
	if rec.code != 200 || !strings.Contains(rec.body.String(), "<port>20993</port>") {
		t.Errorf("port 80 autoconfig: %d %s", rec.code, rec.body.String())
	}
	rec = newRecorder()
	h.ServeHTTP(rec, mustReq("GET", "http://mail.example.test/admin/"))
	if rec.code != 404 {
		t.Errorf("port 80 served a page instead of sending it to the redirect: %d", rec.code)
	}
}

func TestAutodiscover(t *testing.T) {
	e := newEnv(t)
	reqBody := `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>Someone@Example.test</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request>
</Autodiscover>`
	resp, err := e.srv.Client().Post(e.srv.URL+"/autodiscover/autodiscover.xml", "text/xml", strings.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		XMLName  xml.Name
		Response struct {
			XMLName xml.Name
			Account struct {
				Action   string
				Protocol []struct {
					Type, Server, LoginName, SSL string
					Port                         int
				}
			}
		}
	}
	if err := xml.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.XMLName.Space != "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006" ||
		got.Response.XMLName.Space != "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a" {
		t.Errorf("namespaces %v %v", got.XMLName, got.Response.XMLName)
	}
	ps := got.Response.Account.Protocol
	if len(ps) != 2 || ps[0].Type != "IMAP" || ps[0].Port != testPorts.IMAPS || ps[1].Type != "SMTP" || ps[1].Port != testPorts.Submissions ||
		ps[0].LoginName != "someone@example.test" || ps[0].Server != "mail.example.test" || ps[0].SSL != "on" {
		t.Errorf("protocols %+v", ps)
	}
	resp2, _ := e.srv.Client().Post(e.srv.URL+"/autodiscover/autodiscover.xml", "text/xml",
		strings.NewReader(strings.ReplaceAll(reqBody, "Example.test", "other.test")))
	if resp2.StatusCode != 404 {
		t.Errorf("foreign domain: %d", resp2.StatusCode)
	}
}

// plistDict decodes an Apple plist <dict> into key → value (nested dicts in arrays kept apart).
type plistValue struct {
	XMLName xml.Name
	Content string       `xml:",chardata"`
	Items   []plistValue `xml:",any"`
}

func plistDict(v plistValue) map[string]plistValue {
	m := map[string]plistValue{}
	for i := 0; i+1 < len(v.Items); i += 2 {
		if v.Items[i].XMLName.Local == "key" {
			m[v.Items[i].Content] = v.Items[i+1]
		}
	}
	return m
}

func TestMobileconfigIsAPlist(t *testing.T) {
	e := newEnv(t)
	c := e.login("user@example.test", "user-password")
	for _, path := range []string{"/me/mailstead.mobileconfig", "/mail/mailstead.mobileconfig?emailaddress=user%40example.test"} {
		resp, body := e.do(c, "GET", path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-apple-aspen-config" {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var doc struct {
			XMLName xml.Name   `xml:"plist"`
			Dict    plistValue `xml:"dict"`
		}
		dec := xml.NewDecoder(bytes.NewReader([]byte(body)))
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%s: not a plist: %v", path, err)
		}
		top := plistDict(doc.Dict)
		if top["PayloadType"].Content != "Configuration" || top["PayloadVersion"].Content != "1" {
			t.Errorf("profile %v", top)
		}
		content := top["PayloadContent"]
		if content.XMLName.Local != "array" || len(content.Items) != 1 {
			t.Fatalf("PayloadContent %+v", content)
		}
		acct := plistDict(content.Items[0])
		want := map[string]string{
			"PayloadType": "com.apple.mail.managed", "EmailAccountType": "EmailTypeIMAP", "EmailAddress": "user@example.test",
			"IncomingMailServerHostName": "mail.example.test", "IncomingMailServerPortNumber": fmt.Sprint(testPorts.IMAPS),
			"OutgoingMailServerHostName": "mail.example.test", "OutgoingMailServerPortNumber": fmt.Sprint(testPorts.Submissions),
			"IncomingMailServerUsername": "user@example.test",
		}
		for k, v := range want {
			if acct[k].Content != v {
				t.Errorf("%s: %s = %q, want %q", path, k, acct[k].Content, v)
			}
		}
		for _, k := range []string{"IncomingMailServerUseSSL", "OutgoingMailServerUseSSL"} {
			if acct[k].XMLName.Local != "true" {
				t.Errorf("%s = %s", k, acct[k].XMLName.Local)
			}
		}
		if _, ok := acct["IncomingPassword"]; ok {
			t.Error("profile carries a password")
		}
	}
}

func TestMTASTSPolicy(t *testing.T) {
	e := newEnv(t)
	h := e.adm.Handler()
	rec := newRecorder()
	h.ServeHTTP(rec, mustReq("GET", "https://mta-sts.example.test/.well-known/mta-sts.txt"))
	if rec.code != 200 || rec.body.String() != MTASTSPolicy("mail.example.test", "testing") ||
		!strings.HasPrefix(rec.header.Get("Content-Type"), "text/plain") {
		t.Errorf("policy: %d %q %s", rec.code, rec.body.String(), rec.header.Get("Content-Type"))
	}
	for _, host := range []string{"mta-sts.other.test", "mail.example.test"} {
		rec = newRecorder()
		h.ServeHTTP(rec, mustReq("GET", "https://"+host+"/.well-known/mta-sts.txt"))
		if rec.code != 404 {
			t.Errorf("%s: %d", host, rec.code)
		}
	}
}
