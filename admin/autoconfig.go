package admin

import (
	"context"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"mailstead/store"
)

// Client autoconfiguration. Nothing here needs a session or reveals whether an account exists:
// the answers depend only on the domain, which must be one of ours.

// domainOf returns the local domain of an address, or "" when it is not ours.
func (a *Admin) localDomain(ctx context.Context, domain string) string {
	d, err := store.CanonicalDomain(strings.TrimSpace(domain))
	if err != nil {
		return ""
	}
	if ok, _ := a.st.IsLocalDomain(ctx, d); !ok {
		return ""
	}
	return d
}

func requestHost(r *http.Request) string {
	h := r.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// mozillaAutoconfig serves Thunderbird's config-v1.1.xml. The domain comes from ?emailaddress=
// when given, else from the Host (autoconfig.DOMAIN), else the first local domain.
func (a *Admin) mozillaAutoconfig(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var domain string
	if addr := r.URL.Query().Get("emailaddress"); addr != "" {
		if _, d, err := store.SplitAddress(addr); err == nil {
			domain = a.localDomain(ctx, d)
		}
	} else if h, ok := strings.CutPrefix(requestHost(r), "autoconfig."); ok {
		domain = a.localDomain(ctx, h)
	} else if names, _ := a.domainNames(ctx); len(names) > 0 {
		domain = names[0]
	}
	if domain == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	io.WriteString(w, xml.Header)
	writeXML(w, MozillaConfig(domain, a.hostname(ctx), a.cfg.Ports))
}

func writeXML(w io.Writer, v any) {
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	enc.Encode(v)
}

// Mozilla autoconfig, https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat.
type mozClientConfig struct {
	XMLName  xml.Name    `xml:"clientConfig"`
	Version  string      `xml:"version,attr"`
	Provider mozProvider `xml:"emailProvider"`
}

type mozProvider struct {
	ID               string      `xml:"id,attr"`
	Domain           string      `xml:"domain"`
	DisplayName      string      `xml:"displayName"`
	DisplayShortName string      `xml:"displayShortName"`
	Incoming         []mozServer `xml:"incomingServer"`
	Outgoing         []mozServer `xml:"outgoingServer"`
}

type mozServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
}

// MozillaConfig is the autoconfig document for domain. Implicit TLS comes first (RFC 8314 §5.1).
func MozillaConfig(domain, host string, p Ports) any {
	srv := func(typ string, port int, sock string) mozServer {
		return mozServer{Type: typ, Hostname: host, Port: port, SocketType: sock, Username: "%EMAILADDRESS%", Authentication: "password-cleartext"}
	}
	return mozClientConfig{Version: "1.1", Provider: mozProvider{
		ID: domain, Domain: domain, DisplayName: domain + " mail", DisplayShortName: domain,
		Incoming: []mozServer{srv("imap", p.IMAPS, "SSL"), srv("imap", p.IMAP, "STARTTLS"), srv("pop3", p.POP3S, "SSL"), srv("pop3", p.POP3, "STARTTLS")},
		Outgoing: []mozServer{srv("smtp", p.Submissions, "SSL"), srv("smtp", p.Submission, "STARTTLS")},
	}}
}

// Microsoft Autodiscover, plain old XML ([MS-OXDSCLI] §2.2.4).
type autodiscoverRequest struct {
	Request struct {
		EMailAddress string `xml:"EMailAddress"`
	} `xml:"Request"`
}

type adResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLNS   string `xml:"xmlns,attr"`
		Account struct {
			AccountType string       `xml:"AccountType"`
			Action      string       `xml:"Action"`
			Protocol    []adProtocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

type adProtocol struct {
	Type         string `xml:"Type"`
	Server       string `xml:"Server"`
	Port         int    `xml:"Port"`
	LoginName    string `xml:"LoginName"`
	DomainReq    string `xml:"DomainRequired"`
	SPA          string `xml:"SPA"`
	SSL          string `xml:"SSL"`
	Encryption   string `xml:"Encryption"`
	AuthRequired string `xml:"AuthRequired"`
}

// AutodiscoverResponse is the POX answer for address.
func AutodiscoverResponse(address, host string, p Ports) any {
	var resp adResponse
	resp.Response.XMLNS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	resp.Response.Account.AccountType = "email"
	resp.Response.Account.Action = "settings"
	proto := func(typ string, port int) adProtocol {
		return adProtocol{Type: typ, Server: host, Port: port, LoginName: address, DomainReq: "off", SPA: "off",
			SSL: "on", Encryption: "SSL", AuthRequired: "on"}
	}
	resp.Response.Account.Protocol = []adProtocol{proto("IMAP", p.IMAPS), proto("SMTP", p.Submissions)}
	return resp
}

func (a *Admin) autodiscover(w http.ResponseWriter, r *http.Request) {
	var addr string
	if r.Method == http.MethodPost {
		var req autodiscoverRequest
		if err := xml.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, "bad autodiscover request", http.StatusBadRequest)
			return
		}
		addr = req.Request.EMailAddress
	} else {
		addr = r.URL.Query().Get("emailaddress")
		if addr == "" {
			addr = r.URL.Query().Get("email")
		}
	}
	local, d, err := store.SplitAddress(strings.TrimSpace(addr))
	if err != nil || a.localDomain(r.Context(), d) == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	io.WriteString(w, xml.Header)
	writeXML(w, AutodiscoverResponse(local+"@"+d, a.hostname(r.Context()), a.cfg.Ports))
}

// Mobileconfig returns an Apple configuration profile that sets up address in Mail: IMAP with
// implicit TLS and submission with implicit TLS (RFC 8314). It holds no password: the phone asks
// for one, and the user page suggests an app password.
func Mobileconfig(address, host string, p Ports) []byte {
	id := func(kind string) string { // stable per address, so installing again replaces the profile
		h := sha256.Sum256([]byte(kind + "\x00" + host + "\x00" + address))
		h[6] = h[6]&0x0f | 0x50 // version 5 style
		h[8] = h[8]&0x3f | 0x80
		return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
	}
	esc := func(s string) string {
		var b strings.Builder
		xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	revHost := strings.Join(reverse(strings.Split(host, ".")), ".")
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>EmailAccountDescription</key><string>` + esc(address) + `</string>
			<key>EmailAccountName</key><string>` + esc(address) + `</string>
			<key>EmailAccountType</key><string>EmailTypeIMAP</string>
			<key>EmailAddress</key><string>` + esc(address) + `</string>
			<key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
			<key>IncomingMailServerHostName</key><string>` + esc(host) + `</string>
			<key>IncomingMailServerPortNumber</key><integer>` + strconv.Itoa(p.IMAPS) + `</integer>
			<key>IncomingMailServerUseSSL</key><true/>
			<key>IncomingMailServerUsername</key><string>` + esc(address) + `</string>
			<key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
			<key>OutgoingMailServerHostName</key><string>` + esc(host) + `</string>
			<key>OutgoingMailServerPortNumber</key><integer>` + strconv.Itoa(p.Submissions) + `</integer>
			<key>OutgoingMailServerUseSSL</key><true/>
			<key>OutgoingMailServerUsername</key><string>` + esc(address) + `</string>
			<key>OutgoingPasswordSameAsIncomingPassword</key><true/>
			<key>PayloadDescription</key><string>Mail account ` + esc(address) + `</string>
			<key>PayloadDisplayName</key><string>` + esc(address) + `</string>
			<key>PayloadIdentifier</key><string>` + esc(revHost) + `.mailstead.account.` + id("id")[:8] + `</string>
			<key>PayloadType</key><string>com.apple.mail.managed</string>
			<key>PayloadUUID</key><string>` + id("account") + `</string>
			<key>PayloadVersion</key><integer>1</integer>
			<key>PreventAppSheet</key><false/>
			<key>PreventMove</key><false/>
			<key>SMIMEEnabled</key><false/>
		</dict>
	</array>
	<key>PayloadDescription</key><string>Sets up ` + esc(address) + ` in Mail.</string>
	<key>PayloadDisplayName</key><string>Mail: ` + esc(address) + `</string>
	<key>PayloadIdentifier</key><string>` + esc(revHost) + `.mailstead.` + id("id")[:8] + `</string>
	<key>PayloadOrganization</key><string>` + esc(host) + `</string>
	<key>PayloadRemovalDisallowed</key><false/>
	<key>PayloadType</key><string>Configuration</string>
	<key>PayloadUUID</key><string>` + id("profile") + `</string>
	<key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
`)
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func (a *Admin) serveMobileconfig(w http.ResponseWriter, r *http.Request, address string) {
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", `attachment; filename="mail.mobileconfig"`)
	w.Write(Mobileconfig(address, a.hostname(r.Context()), a.cfg.Ports))
}

// publicMobileconfig is what the QR code opens on the phone, which has no session: the profile
// holds no secret, only host names and ports, so it is served for any address of a local domain.
func (a *Admin) publicMobileconfig(w http.ResponseWriter, r *http.Request) {
	local, d, err := store.SplitAddress(r.URL.Query().Get("emailaddress"))
	if err != nil || a.localDomain(r.Context(), d) == "" {
		http.NotFound(w, r)
		return
	}
	a.serveMobileconfig(w, r, local+"@"+d)
}

// mtaSTS serves the MTA-STS policy (RFC 8461 §3.3) at https://mta-sts.DOMAIN/.well-known/mta-sts.txt
// for each local domain. Only over HTTPS: port 80 never answers it.
func (a *Admin) mtaSTS(w http.ResponseWriter, r *http.Request) {
	d, ok := strings.CutPrefix(requestHost(r), "mta-sts.")
	if !ok || a.localDomain(r.Context(), d) == "" {
		http.NotFound(w, r)
		return
	}
	mode, _ := SettingMTASTSMode.String(r.Context(), a.st)
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, MTASTSPolicy(a.hostname(r.Context()), mode))
}
