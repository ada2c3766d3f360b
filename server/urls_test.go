package server

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"mailstead/dns/dnstest"
)

func fakeInterfaces(addrs ...string) func() []net.IP {
	return func() []net.IP {
		var ips []net.IP
		for _, a := range addrs {
			ips = append(ips, net.ParseIP(a))
		}
		return ips
	}
}

func TestSiteURLs(t *testing.T) {
	resolve := func(names map[string]string) func(context.Context, string) ([]net.IP, error) {
		return func(_ context.Context, host string) ([]net.IP, error) {
			if a, ok := names[host]; ok {
				return []net.IP{net.ParseIP(a)}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
	}
	public := fakeInterfaces("203.0.113.5", "2001:db8::5")()
	tests := []struct {
		name string
		in   SiteInput
		want []string
	}{
		{"public addresses, port 443 left out", SiteInput{Port: 443, IPs: public},
			[]string{"https://203.0.113.5/", "https://[2001:db8::5]/"}},
		{"hostname resolving here comes first", SiteInput{Port: 443, IPs: public, Hostname: "mail.example.org",
			Resolve: resolve(map[string]string{"mail.example.org": "2001:db8::5"})},
			[]string{"https://mail.example.org/", "https://203.0.113.5/", "https://[2001:db8::5]/"}},
		{"hostname resolving elsewhere is left out", SiteInput{Port: 443, IPs: public, Hostname: "mail.example.org",
			Resolve: resolve(map[string]string{"mail.example.org": "198.51.100.1"})},
			[]string{"https://203.0.113.5/", "https://[2001:db8::5]/"}},
		{"hostname not in DNS is left out", SiteInput{Port: 443, IPs: public, Hostname: "vm", Resolve: resolve(nil)},
			[]string{"https://203.0.113.5/", "https://[2001:db8::5]/"}},
		{"a bind address is the only one served", SiteInput{Bind: "127.0.0.1", Port: 10443, IPs: public},
			[]string{"https://127.0.0.1:10443/"}},
		{"all addresses bound", SiteInput{Bind: "::", Port: 443, IPs: public[:1]}, []string{"https://203.0.113.5/"}},
		{"no address known", SiteInput{Port: 443, Hostname: "mail.example.org", Resolve: resolve(nil)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SiteURLs(context.Background(), tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestServePrintsPublicSetupURLs: without --bind (as the systemd unit runs it), a first start on
// a machine whose interfaces carry a public address prints a setup link per address, with no
// :443 and without the machine's short hostname.
func TestServePrintsPublicSetupURLs(t *testing.T) {
	srv, err := New(Options{DataDir: t.TempDir(), InterfaceIPs: fakeInterfaces("203.0.113.7", "2001:db8::7")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.store.Close()
	got := srv.accessText(context.Background(), srv.setupToken)
	for _, want := range []string{"\n  https://203.0.113.7/setup?token=" + srv.setupToken + "\n",
		"\n  https://[2001:db8::7]/setup?token=" + srv.setupToken + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("printed %q, want a line %q", got, want)
		}
	}
	if strings.Contains(got, ":443") || srv.setupToken == "" {
		t.Errorf("printed %q (token %q)", got, srv.setupToken)
	}
}

// TestAccessURLsForInstallScript: `mailstead urls` (what install.sh prints) offers the hostname
// once DNS points it at one of the public addresses, then each address; after setup, the admin page.
func TestAccessURLsForInstallScript(t *testing.T) {
	zone := dnstest.NewZone(t)
	zone.Add("mail.example.org. A 203.0.113.7")
	dir := t.TempDir()
	st, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st.SetSetting(ctx, "setup.token", "tok42")
	st.SetSetting(ctx, "hostname", "mail.example.org")
	st.Close()
	opts := Options{DataDir: dir, DNS: zone.Addr(), InterfaceIPs: fakeInterfaces("203.0.113.7")}
	got, err := AccessURLs(ctx, opts)
	if want := "https://mail.example.org/setup?token=tok42\nhttps://203.0.113.7/setup?token=tok42\n"; err != nil || got != want {
		t.Errorf("urls = %q, %v; want %q", got, err, want)
	}

	st, _ = OpenStore(dir, nil)
	st.SetSetting(ctx, "setup.token", "")
	st.Close()
	got, err = AccessURLs(ctx, opts)
	if want := "https://mail.example.org/admin/\nhttps://203.0.113.7/admin/\n"; err != nil || got != want {
		t.Errorf("after setup urls = %q, %v; want %q", got, err, want)
	}
}
