package imap

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2/imapserver"
)

var _ imapserver.SessionID = (*session)(nil)

// ID answers RFC 2971's ID with the server's name and logs the client's fields at debug level;
// nothing else depends on them (RFC 2971 §3.1). No version is sent: it helps attackers more
// than clients (RFC 2971 §5).
func (s *session) ID(client map[string]string) map[string]string {
	if len(client) > 0 {
		keys := make([]string, 0, len(client))
		for k := range client {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k + "=" + client[k] + " ")
		}
		s.srv.log.Debug("imap client id", "ip", s.ip, "user", s.account.Address, "id", strings.TrimSpace(b.String()))
	}
	return map[string]string{"name": "mailstead", "vendor": "mailstead"}
}
