package message

import (
	"testing"
	"time"
)

func TestHeaderTextAndDate(t *testing.T) {
	for _, tc := range []struct {
		name, msg, subject string
		date               time.Time // zero: Date does not parse
	}{
		{name: "plain", msg: "Subject: hello\r\nDate: Thu, 1 Jan 2020 10:00:00 +0000\r\n\r\nx",
			subject: "hello", date: time.Date(2020, 1, 1, 10, 0, 0, 0, time.UTC)},
		{name: "encoded words, folded", msg: "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n =?ISO-8859-1?Q?_caf=E9?=\r\n\r\n",
			subject: "Grüße café"},
		{name: "obsolete date, LF endings", msg: "Date: 1 Jan 20 10:00 -0500\nSubject: x\n\n",
			subject: "x", date: time.Date(2020, 1, 1, 15, 0, 0, 0, time.UTC)},
		{name: "undecodable word kept", msg: "Subject: =?x-unknown?Q?abc?=\r\nDate: yesterday\r\n\r\n",
			subject: "=?x-unknown?Q?abc?="},
		{name: "no header", msg: "", subject: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := ParseHeader([]byte(tc.msg))
			if got := h.Text("Subject"); got != tc.subject {
				t.Errorf("Text(Subject) = %q, want %q", got, tc.subject)
			}
			d, err := h.Date()
			if tc.date.IsZero() != (err != nil) || (err == nil && !d.Equal(tc.date)) {
				t.Errorf("Date() = %v, %v; want %v", d, err, tc.date)
			}
		})
	}
}
