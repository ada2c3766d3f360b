package queue

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"mailstead/store"
)

// A report reads only what it carries: the header, or the whole message for a RET=FULL failure
// up to maxFullReturn; past that, the header and a note saying why.
func TestReportReadsWhatItCarries(t *testing.T) {
	hdr := "From: a@a.test\r\nSubject: big\r\n\r\n"
	small := hdr + "hello\r\n"
	large := hdr + strings.Repeat("x", maxFullReturn) + "\r\n"
	tests := []struct {
		name, msg, ret, action string
		wantFull, wantNote     bool
	}{
		{"small RET=FULL failure", small, "FULL", "failed", true, false},
		{"small RET=HDRS failure", small, "HDRS", "failed", false, false},
		{"small RET=FULL delay", small, "FULL", "delayed", false, false},
		{"large RET=FULL failure", large, "FULL", "failed", false, true},
	}
	q := &Queue{cfg: Config{Hostname: func() string { return "mx.a.test" }, Now: time.Now}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &body{size: int64(len(tt.msg)), open: func(context.Context) (io.ReaderAt, error) {
				return strings.NewReader(tt.msg), nil
			}}
			orig, err := b.forReport(context.Background(), tt.action == "failed" && tt.ret == "FULL")
			if err != nil {
				t.Fatal(err)
			}
			if (orig.full != nil) != tt.wantFull || string(orig.header[:len(hdr)]) != hdr {
				t.Fatalf("full read: %v, header %q", orig.full != nil, orig.header)
			}
			rcpt := dsnRecipient{entry: store.QueueEntry{Rcpt: "b@b.test", DSN: store.DSN{Ret: tt.ret}},
				outcome: outcome{status: failed, code: "5.0.0", reason: "no"}}
			dsn := q.composeDSN("a@a.test", orig, []dsnRecipient{rcpt}, tt.action, time.Hour)
			if got := bytes.Contains(dsn, []byte("Content-Type: message/rfc822\r\n\r\n"+small)); got != tt.wantFull {
				t.Errorf("whole message returned: %v, want %v", got, tt.wantFull)
			}
			if got := bytes.Contains(dsn, []byte("Content-Type: text/rfc822-headers\r\n\r\nFrom: a@a.test\r\nSubject: big\r\n\r\n--")); got == tt.wantFull {
				t.Errorf("header part present: %v, want %v", got, !tt.wantFull)
			}
			if got := bytes.Contains(dsn, []byte("only its header is attached")); got != tt.wantNote {
				t.Errorf("note: %v, want %v", got, tt.wantNote)
			}
		})
	}
}
