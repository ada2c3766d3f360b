package server

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"mailstead/admin"
	"mailstead/dns"
	"mailstead/manage"
)

// Where a browser outside reaches the admin site. The machine's short hostname (what os.Hostname
// says on a fresh VPS) and ":443" open nothing from outside; its public addresses do, and so
// does the mail hostname once DNS points it here.

// SiteInput is what decides the admin site's URLs.
type SiteInput struct {
	Bind     string   // the listening address; a specific one is the only address served
	Port     int      // the HTTPS port (443 plus the port offset)
	Hostname string   // the mail hostname, "" before setup
	IPs      []net.IP // this server's public addresses (admin.public_ips, else the interfaces')
	// Resolve looks up the hostname's addresses; nil means the hostname is never offered.
	Resolve func(ctx context.Context, host string) ([]net.IP, error)
}

// SiteURLs returns the base URLs of the admin site ("https://203.0.113.5/"), the hostname first
// when it resolves to one of the addresses, then one per address. None when no address is known.
func SiteURLs(ctx context.Context, in SiteInput) []string {
	ips := in.IPs
	if ip := net.ParseIP(in.Bind); ip != nil && !ip.IsUnspecified() {
		ips = []net.IP{ip}
	}
	var urls []string
	if in.Hostname != "" && in.Resolve != nil && len(ips) > 0 {
		if found, err := in.Resolve(ctx, in.Hostname); err == nil && slices.ContainsFunc(found, func(f net.IP) bool {
			return slices.ContainsFunc(ips, f.Equal)
		}) {
			urls = append(urls, siteURL(in.Hostname, in.Port))
		}
	}
	for _, ip := range ips {
		urls = append(urls, siteURL(ip.String(), in.Port))
	}
	return urls
}

// siteURL is https://host/ with the port only when it is not HTTPS's own.
func siteURL(host string, port int) string {
	if port == PortHTTPS {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return "https://" + host + "/"
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/"
}

// siteInput describes the running server's admin site.
func (s *Server) siteInput(ctx context.Context) SiteInput {
	port := PortHTTPS + s.opts.PortOffset
	if _, p, err := net.SplitHostPort(s.Addr(PortHTTPS)); err == nil {
		port, _ = strconv.Atoi(p)
	}
	host, _ := manage.SettingHostname.String(ctx, s.store)
	return SiteInput{Bind: s.opts.Bind, Port: port, Hostname: host,
		IPs: admin.PublicIPs(ctx, s.store, s.fallbackIPs), Resolve: s.resolver.LookupIP}
}

// accessText is what serve prints once it listens: the setup links while no domain exists, the
// admin page's otherwise; in dev mode every web page and the metrics page.
func (s *Server) accessText(ctx context.Context, setupToken string) string {
	urls := SiteURLs(ctx, s.siteInput(ctx))
	var b strings.Builder
	switch {
	case len(urls) == 0 && setupToken != "":
		fmt.Fprintf(&b, "setup: no public address found on this machine's interfaces; open https://<its public address>/setup?token=%s\n"+
			"  (behind NAT, set it: mailstead settings set admin.public_ips ADDRESS)\n", setupToken)
	case len(urls) == 0:
		b.WriteString("admin page: no public address found on this machine's interfaces; open https://<its public address>/admin/\n")
	case setupToken != "":
		b.WriteString("setup: open this in your browser to finish setting up (no mail is accepted until then):\n")
		for _, u := range urls {
			fmt.Fprintf(&b, "  %ssetup?token=%s\n", u, setupToken)
		}
	case s.opts.Dev:
		b.WriteString("web pages:\n")
		for _, p := range admin.WebPages() {
			fmt.Fprintf(&b, "  %-40s %s\n", strings.TrimSuffix(urls[0], "/")+p.Path, p.Title)
		}
		if addr := s.Addr(PortMetrics); addr != "" {
			fmt.Fprintf(&b, "  %-40s %s\n", "http://"+addr+"/metrics", "metrics (Prometheus)")
		}
	default:
		for _, u := range urls {
			fmt.Fprintf(&b, "admin page: %sadmin/\n", u)
		}
	}
	return b.String()
}

// AccessURLs is what install.sh prints after starting the service on dataDir: the setup links
// while setup is pending, else the admin page's, computed as the server computes them. It reads
// the settings through the running server when there is one.
// Only DataDir is required; the others are serve's flags of the same name.
func AccessURLs(ctx context.Context, opts Options) (string, error) {
	if opts.InterfaceIPs == nil {
		opts.InterfaceIPs = admin.InterfaceIPs
	}
	get := func(key string) (string, error) {
		v, err := Manage(ctx, opts.DataDir, Request{Command: "settings", Args: []string{"get", key}})
		return strings.TrimSpace(v), err
	}
	token, err := get("setup.token")
	if err != nil {
		return "", err
	}
	host, err := get("hostname")
	if err != nil {
		return "", err
	}
	public, err := get("admin.public_ips")
	if err != nil {
		return "", err
	}
	in := SiteInput{Bind: opts.Bind, Port: PortHTTPS + opts.PortOffset, Hostname: host, Resolve: dns.New(opts.DNS).LookupIP,
		IPs: parsedIPs(public)}
	if len(in.IPs) == 0 {
		in.IPs = opts.InterfaceIPs()
	}
	var b strings.Builder
	for _, u := range SiteURLs(ctx, in) {
		if token != "" {
			fmt.Fprintf(&b, "%ssetup?token=%s\n", u, token)
		} else {
			fmt.Fprintf(&b, "%sadmin/\n", u)
		}
	}
	return b.String(), nil
}

// parsedIPs reads admin.public_ips with the admin package's one parser ("" or a bad value: none).
func parsedIPs(v string) []net.IP {
	ips, _ := admin.ParsePublicIPs(v)
	return ips
}
