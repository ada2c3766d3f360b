package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"mailstead/mailtest"
	"mailstead/server"
	"mailstead/store"
)

// runCLI runs the mailstead binary on a data directory and returns its output.
func runCLI(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(mailtest.Binary(t), append(args, "--data", dir)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var subjectID = regexp.MustCompile(`(?m)^Subject: (w\d+-m\d+)\r$`)

func subjects(t *testing.T, st *store.Store, addr string) map[string]int {
	t.Helper()
	ctx := context.Background()
	acct, err := st.AccountByAddress(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := st.Mailboxes(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, mb := range boxes { // INBOX or Junk, as the inbound checks decide
		for _, m := range mailtest.Mailbox(t, st, addr, mb.Name) {
			if s := subjectID.FindSubmatch(m); s != nil {
				seen[string(s[1])]++
			}
		}
	}
	return seen
}

// TestBackupDuringDeliveryLoadAndRestore: `mailstead backup` runs while eight clients deliver to a
// server process; the backup, restored into a new directory, holds every message acknowledged
// before the backup began, passes `verify`, and serves mail. restore refuses a running server.
func TestBackupDuringDeliveryLoadAndRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a server process")
	}
	opts := mailtest.Prepare(t, mailtest.Options{})
	mailtest.StartProcess(t, opts)

	var mu sync.Mutex
	acked := map[string]time.Time{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("w%d-m%d", w, i)
				msg := "From: x@remote.test\r\nSubject: " + id + "\r\nMessage-ID: <" + id + "@remote.test>\r\n\r\n" + strings.Repeat("backup under load\r\n", 100)
				c, err := gosmtp.Dial(opts.Addr(25))
				if err != nil {
					continue
				}
				err = c.SendMail("x@remote.test", []string{"alice@example.test"}, strings.NewReader(msg))
				c.Close()
				if err == nil {
					mu.Lock()
					acked[id] = time.Now()
					mu.Unlock()
				}
			}
		}(w)
	}
	mailtest.WaitFor(t, 30*time.Second, "deliveries under way", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 100
	})
	mu.Lock()
	before := map[string]bool{}
	for id := range acked {
		before[id] = true
	}
	mu.Unlock()
	backup := filepath.Join(t.TempDir(), "backup")
	out, err := runCLI(t, opts.Dir, "backup", backup)
	mailtest.WaitFor(t, 30*time.Second, "more deliveries after the backup", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= len(before)+50
	})
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	t.Logf("%s", out)

	// verify runs inside the running server, through its control socket.
	if out, err := runCLI(t, opts.Dir, "verify"); err != nil || !strings.Contains(out, "verify: ok") {
		t.Fatalf("verify of the live directory: %v\n%s", err, out)
	}
	if out, err := runCLI(t, opts.Dir, "restore", backup); err == nil || !strings.Contains(out, "running") {
		t.Fatalf("restore over a running server: %v\n%s", err, out)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := runCLI(t, restored, "restore", backup); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := runCLI(t, restored, "verify"); err != nil || !strings.Contains(out, "verify: ok") {
		t.Fatalf("verify of the restored directory: %v\n%s", err, out)
	}

	// The restored directory serves as is; everything acknowledged before the backup is there.
	rOpts := mailtest.Options{Dir: restored}
	srv := mailtest.Run(t, rOpts)
	seen := subjects(t, srv.Store(), "alice@example.test")
	for id := range before {
		if seen[id] != 1 {
			t.Errorf("message %s, acknowledged before the backup, is in it %d times", id, seen[id])
		}
	}
	if len(seen) >= len(acked) {
		t.Logf("note: the backup holds all %d messages (deliveries after it were fast to commit?)", len(seen))
	}
	if err := send(t, srv.Opts.Addr(25), "x@remote.test", []string{"alice@example.test"}, []byte("From: x@remote.test\r\nSubject: after restore\r\n\r\nhi\r\n"), nil); err != nil {
		t.Fatalf("delivery to the restored server: %v", err)
	}
	t.Logf("%d acknowledged before the backup, %d in it, %d acknowledged in all", len(before), len(seen), len(acked))
}

// scrape fetches and parses /metrics with the Prometheus text parser.
func scrape(t *testing.T, srv *mailtest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	addr := srv.Addr(server.PortMetrics)
	if addr == "" {
		t.Fatal("no metrics listener")
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// metricValue sums a family's samples whose labels include want (counter, gauge or histogram count).
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	var sum float64
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// TestMetricsMoveAsMailFlows: A's and B's /metrics pages parse, start at zero, and count
// submission, relay, a bounce, MX reception, connections and a failed login.
func TestMetricsMoveAsMailFlows(t *testing.T) {
	p := newPair(t, nil)
	p.startB(t)
	a0 := scrape(t, p.a)
	if v := metricValue(a0, "mailstead_messages_received_total", map[string]string{"via": "submission"}); v != 0 {
		t.Fatalf("received before any mail: %v", v)
	}
	for _, name := range []string{"mailstead_queue_messages", "mailstead_queue_oldest_age_seconds", "mailstead_store_bytes", "go_goroutines"} {
		if a0[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	if v := metricValue(a0, "mailstead_store_bytes", nil); v <= 0 {
		t.Errorf("store bytes %v", v)
	}
	if v := metricValue(a0, "mailstead_certificate_expiry_timestamp_seconds", map[string]string{"name": "mail.a.test"}); v < float64(time.Now().Unix()) {
		t.Errorf("certificate expiry of mail.a.test: %v", v)
	}

	if err := submit(t, p.a, false, "alice@a.test", "wrong-password", "alice@a.test", []string{"bob@b.test"}, aliceToBob); err == nil {
		t.Fatal("submission with a wrong password accepted")
	}
	if err := submit(t, p.a, false, "alice@a.test", "alice-pw", "alice@a.test", []string{"bob@b.test", "nobody@b.test"}, aliceToBob); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A's queue to empty", 30*time.Second, func() bool { return len(queueOf(t, p.a.Store())) == 0 })

	a := scrape(t, p.a)
	checks := []struct {
		fams   map[string]*dto.MetricFamily
		name   string
		labels map[string]string
		min    float64
	}{
		{a, "mailstead_messages_received_total", map[string]string{"via": "submission"}, 1},
		{a, "mailstead_messages_sent_total", nil, 1},
		{a, "mailstead_messages_bounced_total", nil, 1},
		{a, "mailstead_auth_failures_total", map[string]string{"proto": "smtp"}, 1},
		{a, "mailstead_connections_total", map[string]string{"service": "submission"}, 2},
		{a, "mailstead_delivery_latency_seconds", nil, 1},
		{a, "mailstead_queue_messages", nil, 0},
	}
	b := scrape(t, p.b)
	checks = append(checks, []struct {
		fams   map[string]*dto.MetricFamily
		name   string
		labels map[string]string
		min    float64
	}{
		{b, "mailstead_messages_received_total", map[string]string{"via": "mx"}, 1},
		{b, "mailstead_connections_total", map[string]string{"service": "smtp"}, 1},
	}...)
	for _, c := range checks {
		if v := metricValue(c.fams, c.name, c.labels); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
	if metricValue(a, "mailstead_messages_bounced_total", nil) > 1 {
		t.Errorf("bounced counted more than once")
	}
}

func TestMetricsSettingOffAndLoopbackDefault(t *testing.T) {
	off := mailtest.Start(t, mailtest.Options{Settings: map[string]string{"metrics.listen": "off"}})
	if addr := off.Addr(server.PortMetrics); addr != "" {
		t.Fatalf("metrics.listen=off still serves on %s", addr)
	}
	on := mailtest.Start(t, mailtest.Options{})
	want := on.Opts.Addr(server.PortMetrics)
	if got := on.Addr(server.PortMetrics); got != want {
		t.Fatalf("metrics on %s, want %s (the loopback bind address, port 9025 plus the offset)", got, want)
	}
}

// writeMbox writes n messages; message i is read when i%3==0, flagged when i%5==0, and its
// separator carries a date i minutes after base.
func writeMbox(t *testing.T, path string, n int, base time.Time) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := 0; i < n; i++ {
		d := base.Add(time.Duration(i) * time.Minute)
		fmt.Fprintf(&b, "From sender%d@remote.test %s\n", i, d.Format("Mon Jan _2 15:04:05 2006"))
		fmt.Fprintf(&b, "From: Sender <sender%d@remote.test>\nTo: alice@example.test\nSubject: mbox %d\nMessage-ID: <m%d@remote.test>\n", i, i, i)
		if i%3 == 0 {
			b.WriteString("Status: RO\n")
		}
		if i%5 == 0 {
			b.WriteString("X-Status: F\n")
		}
		fmt.Fprintf(&b, "\nBody of message %d.\n>From here a quoted From line.\nFrom the middle of a line, not a separator\n\n", i)
		if b.Len() > 1<<20 {
			f.WriteString(b.String())
			b.Reset()
		}
	}
	f.WriteString(b.String())
}

var mboxSubject = regexp.MustCompile(`(?m)^Subject: mbox (\d+)\r$`)

// TestImportMbox10000: a 10,000-message mbox imported through the running server lands in INBOX
// with its dates and flags, quoted From lines unquoted, and importing it again adds nothing.
func TestImportMbox10000(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 10,000 messages")
	}
	srv := mailtest.Start(t, mailtest.Options{})
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "big.mbox")
	base := time.Date(2015, 6, 1, 8, 0, 0, 0, time.UTC)
	const n = 10000
	writeMbox(t, path, n, base)

	var out strings.Builder
	if err := server.RunOps(ctx, srv.Opts.Dir, "import", []string{"mbox", "alice@example.test", path}, &out); err != nil {
		t.Fatalf("import: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("imported %d messages", n)) {
		t.Fatalf("import said %q", out.String())
	}
	if strings.Contains(out.String(), "\r") {
		t.Errorf("a progress line went to a non-terminal: %q", out.String())
	}
	st := srv.Store()
	acct, _ := st.AccountByAddress(ctx, "alice@example.test")
	inbox, _ := st.MailboxByName(ctx, acct.ID, "INBOX")
	msgs, err := st.Messages(ctx, inbox.ID)
	if err != nil || len(msgs) != n {
		t.Fatalf("INBOX holds %d messages (%v), want %d", len(msgs), err, n)
	}
	for _, m := range msgs {
		data, err := st.MessageData(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		sm := mboxSubject.FindSubmatch(data)
		if sm == nil {
			t.Fatalf("message %d has no numbered subject:\n%s", m.UID, data)
		}
		var i int
		fmt.Sscan(string(sm[1]), &i)
		if want := base.Add(time.Duration(i) * time.Minute); !m.InternalDate.Equal(want) {
			t.Fatalf("message %d: internal date %v, want %v", i, m.InternalDate.UTC(), want)
		}
		flags := strings.Join(m.Flags, " ")
		if got, want := strings.Contains(flags, `\Seen`), i%3 == 0; got != want {
			t.Fatalf("message %d: flags %q, \\Seen should be %v", i, flags, want)
		}
		if got, want := strings.Contains(flags, `\Flagged`), i%5 == 0; got != want {
			t.Fatalf("message %d: flags %q, \\Flagged should be %v", i, flags, want)
		}
		if !strings.Contains(string(data), "\r\nFrom here a quoted From line.\r\nFrom the middle") ||
			strings.HasSuffix(string(data), "\r\n\r\n") {
			t.Fatalf("message %d body not as written:\n%q", i, data)
		}
	}

	out.Reset()
	if err := server.RunOps(ctx, srv.Opts.Dir, "import", []string{"mbox", "alice@example.test", path}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("imported 0 messages into alice@example.test (%d already there", n)) {
		t.Fatalf("second import said %q", out.String())
	}
	if c, _ := st.CountRows(ctx, "messages"); c != n {
		t.Fatalf("%d messages after importing twice", c)
	}
	if rep, err := st.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", rep.Problems, err)
	}
}

const takeout = `From 1787781263116734566@xxx Sat Jan 20 14:43:28 +0000 2024
X-GM-THRID: 1787781263116734566
X-Gmail-Labels: Inbox,Category Updates,Opened,Work/Projects,Starred
Date: Sat, 20 Jan 2024 15:43:20 +0100
From: Boss <boss@corp.test>
To: me@gmail.test
Subject: takeout inbox

In the inbox and labelled Work/Projects, read, starred.

From 1787781263116734567@xxx Sun Jan 21 09:00:00 +0000 2024
X-Gmail-Labels: Sent,Opened
Date: Sun, 21 Jan 2024 09:00:00 +0000
Subject: takeout sent

Sent by me.

From 1787781263116734568@xxx Mon Jan 22 10:00:00 +0000 2024
X-Gmail-Labels: Unread,Archived,"Receipts, 2024",=?UTF-8?Q?F=C3=BCr_Later?=
Date: Mon, 22 Jan 2024 10:00:00 +0000
Subject: takeout archived

Unread, archived, two user labels (one quoted with a comma, one encoded).

From 1787781263116734569@xxx Tue Jan 23 11:00:00 +0000 2024
X-Gmail-Labels: Important,Opened
Subject: takeout archive only

No folder label at all: it was archived in Gmail.

From 1787781263116734570@xxx Wed Jan 24 12:00:00 +0000 2024
X-Gmail-Labels: Spam,Unread
Subject: takeout spam

Spam.
`

// TestImportTakeoutAndMaildir imports with the server stopped (the CLI opens the directory
// itself): Gmail labels become mailboxes and flags; Maildir subfolders, flags and dates survive;
// a second run adds nothing.
func TestImportTakeoutAndMaildir(t *testing.T) {
	opts := mailtest.Prepare(t, mailtest.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	mbox := filepath.Join(dir, "All mail Including Spam and Trash.mbox")
	os.WriteFile(mbox, []byte(takeout), 0o600)

	md := filepath.Join(dir, "Maildir")
	mdDate := time.Date(2012, 12, 12, 12, 12, 12, 0, time.UTC)
	files := map[string]string{
		"cur/1355314332.M1P1.host:2,S":                 "Subject: md seen\n\nx\n",
		"cur/1355314333.M2P1.host:2,FRa":               "Subject: md flagged replied keyword\n\nx\n",
		"new/1355314334.M3P1.host":                     "Subject: md new\n\nx\n",
		".Lists.Go/cur/1355314335.M4P1.host:2,ST":      "Subject: md list\n\nx\n",
		".Entw&APw-rfe/cur/1355314336.M5P1.host:2,D":   "Subject: md draft\n\nx\n",
		"tmp/1355314337.M6P1.host":                     "Subject: never\n\nin tmp: not delivered yet\n",
		".Lists.Go/dovecot-keywords":                   "0 $Important\n",
		"dovecot-keywords":                             "0 $Label1\n",
		".Lists.Go/new/.hidden-not-a-message":          "x",
		".Entw&APw-rfe/new/1355314338.M7P1.host":       "Subject: md draft folder new\n\nx\n",
		".Lists.Go/cur/1355314339.M8P1.host:2,":        "Subject: md list unflagged\n\nx\n",
		"cur/1355314340.M9P1.host:2,P":                 "Subject: md passed\n\nx\n",
		".Lists.Go/tmp/1355314341.M10P1.host":          "Subject: never either\n\nx\n",
		".Entw&APw-rfe/cur/1355314342.M11P1.host:2,FS": "Subject: md draft folder seen\n\nx\n",
	}
	for name, body := range files {
		p := filepath.Join(md, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(body), 0o600)
		os.Chtimes(p, mdDate, mdDate)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, sub), 0o700)
	}

	for round := 0; round < 2; round++ {
		var out strings.Builder
		if err := server.RunOps(ctx, opts.Dir, "import", []string{"mbox", "alice@example.test", mbox}, &out); err != nil {
			t.Fatalf("import mbox: %v", err)
		}
		want := "imported 7 messages" // 5 messages, two of them with two labels
		if round == 1 {
			want = "imported 0 messages into alice@example.test (7 already there"
		}
		if !strings.Contains(out.String(), want) {
			t.Fatalf("round %d: mbox import said %q, want %q", round, out.String(), want)
		}
		out.Reset()
		if err := server.RunOps(ctx, opts.Dir, "import", []string{"maildir", "alice@example.test", md, "Old"}, &out); err != nil {
			t.Fatalf("import maildir: %v", err)
		}
		want = "imported 9 messages" // tmp/ and dot files are not messages
		if round == 1 {
			want = "imported 0 messages into alice@example.test (9 already there"
		}
		if !strings.Contains(out.String(), want) {
			t.Fatalf("round %d: maildir import said %q, want %q", round, out.String(), want)
		}
	}

	st, err := store.Open(opts.Dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, _ := st.AccountByAddress(ctx, "alice@example.test")
	type msg struct {
		flags string
		date  time.Time
	}
	box := func(name string) map[string]msg {
		mb, err := st.MailboxByName(ctx, acct.ID, name)
		if err != nil {
			t.Fatalf("mailbox %q: %v", name, err)
		}
		ms, _ := st.Messages(ctx, mb.ID)
		out := map[string]msg{}
		for _, m := range ms {
			data, _ := st.MessageData(ctx, m.ID)
			s := regexp.MustCompile(`(?m)^Subject: (.*)\r$`).FindSubmatch(data)
			if s == nil {
				t.Fatalf("message without subject in %s: %q", name, data)
			}
			out[string(s[1])] = msg{strings.Join(m.Flags, " "), m.InternalDate.UTC()}
		}
		return out
	}
	expect := []struct {
		mailbox, subject, flags string
		date                    time.Time
	}{
		{"INBOX", "takeout inbox", `\Flagged \Seen`, time.Date(2024, 1, 20, 14, 43, 28, 0, time.UTC)},
		{"Work/Projects", "takeout inbox", `\Flagged \Seen`, time.Date(2024, 1, 20, 14, 43, 28, 0, time.UTC)},
		{"Sent", "takeout sent", `\Seen`, time.Date(2024, 1, 21, 9, 0, 0, 0, time.UTC)},
		{"Receipts, 2024", "takeout archived", ``, time.Date(2024, 1, 22, 10, 0, 0, 0, time.UTC)},
		{"Für Later", "takeout archived", ``, time.Date(2024, 1, 22, 10, 0, 0, 0, time.UTC)},
		{"Archive", "takeout archive only", `\Seen`, time.Date(2024, 1, 23, 11, 0, 0, 0, time.UTC)},
		{"Junk", "takeout spam", ``, time.Date(2024, 1, 24, 12, 0, 0, 0, time.UTC)},
		{"Old", "md seen", `\Seen`, mdDate},
		{"Old", "md flagged replied keyword", `\Flagged \Answered $Label1`, mdDate},
		{"Old", "md new", ``, mdDate},
		{"Old", "md passed", `$Forwarded`, mdDate},
		{"Old/Lists/Go", "md list", `\Seen \Deleted`, mdDate},
		{"Old/Lists/Go", "md list unflagged", ``, mdDate},
		{"Old/Entwürfe", "md draft", `\Draft`, mdDate},
		{"Old/Entwürfe", "md draft folder new", ``, mdDate},
		{"Old/Entwürfe", "md draft folder seen", `\Flagged \Seen`, mdDate},
	}
	counts := map[string]int{}
	for _, e := range expect {
		counts[e.mailbox]++
	}
	for name, n := range counts {
		if got := len(box(name)); got != n {
			t.Errorf("mailbox %q holds %d messages, want %d: %v", name, got, n, box(name))
		}
	}
	for _, e := range expect {
		m, ok := box(e.mailbox)[e.subject]
		if !ok {
			t.Errorf("%q not in %s", e.subject, e.mailbox)
			continue
		}
		if m.flags != e.flags || !m.date.Equal(e.date) {
			t.Errorf("%s / %q: flags %q date %v, want %q %v", e.mailbox, e.subject, m.flags, m.date, e.flags, e.date)
		}
	}
	if rep, err := st.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", rep.Problems, err)
	}
}

// TestEveryOlderSchemaServes: a data directory left at each older schema version opens with
// this server, which migrates it, serves mail into it, and verifies clean.
func TestEveryOlderSchemaServes(t *testing.T) {
	for v := 1; v < store.SchemaVersion(); v++ {
		t.Run(fmt.Sprint("schema", v), func(t *testing.T) {
			dir := t.TempDir()
			old, err := store.Open(dir, store.Options{MaxSchema: v})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := old.AddDomain(ctx, "example.test"); err != nil {
				t.Fatal(err)
			}
			if _, err := old.AddAccount(ctx, "alice@example.test", "alice-password", true); err != nil {
				t.Fatal(err)
			}
			old.Close()
			srv := mailtest.Run(t, mailtest.Options{Dir: dir})
			if err := send(t, srv.Opts.Addr(25), "x@remote.test", []string{"alice@example.test"}, []byte("From: x@remote.test\r\nSubject: upgraded\r\n\r\nhi\r\n"), nil); err != nil {
				t.Fatalf("delivery after upgrade from schema %d: %v", v, err)
			}
			rep, err := srv.Store().Verify(ctx)
			if err != nil || len(rep.Problems) > 0 || rep.Counts["messages"] != 1 {
				t.Fatalf("verify after upgrade from schema %d: %+v %v", v, rep, err)
			}
		})
	}
}

// TestLogsAuthFailedLineAndNoPassword: in text and in JSON (--log-json) a failed login over POP3
// and over submission writes the documented "auth failed" line with proto and ip, a delivery
// writes one "smtp delivered" line, and the password never appears in the log.
func TestLogsAuthFailedLineAndNoPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server process")
	}
	const secret = "Tr0ub4dor-and-3"
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprint("json=", asJSON), func(t *testing.T) {
			opts := mailtest.Prepare(t, mailtest.Options{})
			var args []string
			if asJSON {
				args = append(args, "--log-json")
			}
			p := mailtest.StartProcess(t, opts, args...)

			pc, err := tls.Dial("tcp", opts.Addr(995), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			pr := bufio.NewReader(pc)
			popLine(t, pr, pc, "", "+OK")
			popLine(t, pr, pc, "USER alice@example.test", "+OK")
			popLine(t, pr, pc, "PASS "+secret, "-ERR")
			pc.Close()

			sc, err := gosmtp.DialStartTLS(opts.Addr(587), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := sc.Auth(sasl.NewPlainClient("", "alice@example.test", secret)); err == nil {
				t.Fatal("AUTH with a wrong password accepted")
			}
			sc.Close()
			if err := send(t, opts.Addr(25), "x@remote.test", []string{"alice@example.test"}, []byte("From: x@remote.test\r\nSubject: logged\r\n\r\nhi\r\n"), nil); err != nil {
				t.Fatal(err)
			}
			if err := p.Terminate(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			logs := p.Stderr.String()
			if strings.Contains(logs, secret) {
				t.Fatalf("the password is in the log:\n%s", logs)
			}
			failed := map[string]bool{}
			delivered := 0
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				var rec map[string]any
				if asJSON {
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Fatalf("not a JSON line: %q", line)
					}
				} else {
					rec = map[string]any{}
					for _, m := range regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`).FindAllStringSubmatch(line, -1) {
						rec[m[1]] = strings.Trim(m[2], `"`)
					}
				}
				switch rec["msg"] {
				case "auth failed":
					if rec["level"] != "WARN" || net.ParseIP(fmt.Sprint(rec["ip"])) == nil || rec["user"] != "alice@example.test" {
						t.Errorf("auth failed line without level, ip or user: %q", line)
					}
					if host := fail2banHost(t, line); host != rec["ip"] {
						t.Errorf("the fail2ban filter finds %q in %q", host, line)
					}
					failed[fmt.Sprint(rec["proto"])] = true
				case "smtp delivered":
					delivered++
				}
			}
			if !failed["pop3"] || !failed["smtp"] {
				t.Errorf("auth failed lines for %v, want pop3 and smtp:\n%s", failed, logs)
			}
			if delivered != 1 {
				t.Errorf("%d smtp delivered lines for one transaction", delivered)
			}
		})
	}
}

// fail2banHost applies contrib/fail2ban's failregex lines to a log line, as fail2ban would.
func fail2banHost(t *testing.T, line string) string {
	t.Helper()
	conf, err := os.ReadFile("../contrib/fail2ban/filter.d/mailstead.conf")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(conf), "failregex = ")
	for _, l := range strings.Split(rest, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "ignoreregex") {
			break
		}
		re := regexp.MustCompile(strings.ReplaceAll(l, "<HOST>", `(?P<host>[0-9A-Fa-f.:]+)`))
		if m := re.FindStringSubmatch(line); m != nil {
			return m[re.SubexpIndex("host")]
		}
	}
	return ""
}

// TestImportSeenByIMAPIdle: an import into a running server goes through it, so a client idling
// in INBOX is told of each imported message, and a mailbox the import creates can be selected.
func TestImportSeenByIMAPIdle(t *testing.T) {
	srv, _, implicit := imapServer(t)
	exists := make(chan uint32, 64)
	c, err := imapclient.DialTLS(implicit, &imapclient.Options{
		TLSConfig: &tls.Config{InsecureSkipVerify: true},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.test", "alice-password").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	mbox := filepath.Join(t.TempDir(), "three.mbox")
	writeMbox(t, mbox, 3, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	var out strings.Builder
	if err := server.RunOps(context.Background(), srv.Opts.Dir, "import", []string{"mbox", "alice@example.test", mbox}, &out); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(15 * time.Second)
	for n := uint32(0); n < 3; {
		select {
		case n = <-exists:
		case <-deadline:
			t.Fatalf("IDLE saw EXISTS %d, want 3", n)
		}
	}
	idle.Close()
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := server.RunOps(context.Background(), srv.Opts.Dir, "import", []string{"mbox", "alice@example.test", mbox, "Old/Mail"}, &out); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("Old/Mail", nil).Wait()
	if err != nil || sel.NumMessages != 3 {
		t.Fatalf("SELECT Old/Mail after the import: %v %+v", err, sel)
	}
}
