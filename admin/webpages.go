package admin

// WebPage is one page of the admin site a person opens in a browser.
type WebPage struct {
	Path  string // below the site's root, starting with "/"
	Title string
}

// WebPages lists the pages a person opens directly (dev mode prints a URL for each): the user's
// own page, then the admin pages in the order of the navigation bar.
func WebPages() []WebPage {
	return []WebPage{
		{"/login", "log in"},
		{"/me", "my account (app passwords, phone setup)"},
		{"/admin/", "overview"},
		{"/admin/dns", "DNS records"},
		{"/admin/domains", "domains"},
		{"/admin/accounts", "accounts"},
		{"/admin/aliases", "aliases"},
		{"/admin/queue", "outbound queue"},
		{"/admin/events", "activity"},
		{"/admin/certificates", "certificates"},
		{"/admin/settings", "settings"},
		{"/admin/tokens", "API tokens"},
	}
}
