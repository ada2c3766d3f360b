package imap

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func capList(line string) []string {
	i := strings.Index(line, "[CAPABILITY ")
	if i < 0 {
		if j := strings.Index(line, "CAPABILITY "); j >= 0 {
			return strings.Fields(line[j+len("CAPABILITY "):])
		}
		return nil
	}
	rest := line[i+len("[CAPABILITY "):]
	return strings.Fields(rest[:strings.IndexByte(rest, ']')])
}

func TestCapabilitiesAreExactlyWhatWorks(t *testing.T) {
	e := newEnv(t, nil)
	c := dialRaw(t, e.plain)
	c.send("a CAPABILITY\r\n")
	lines := c.untilTagged("a")
	pre := capList(lines[0])
	if !slices.Contains(pre, "LOGINDISABLED") || !slices.Contains(pre, "STARTTLS") || slices.Contains(pre, "AUTH=PLAIN") {
		t.Errorf("before TLS: %v, want LOGINDISABLED and STARTTLS, no AUTH=PLAIN", pre)
	}
	c.send("b LOGIN alice@example.test alice-secret\r\n")
	c.expectPrefix("b NO [PRIVACYREQUIRED]")
	c.send("c STARTTLS\r\n")
	c.expectPrefix("c OK")
	c.startTLS()
	c.send("d CAPABILITY\r\n")
	if caps := capList(c.untilTagged("d")[0]); !slices.Contains(caps, "AUTH=PLAIN") || slices.Contains(caps, "STARTTLS") {
		t.Errorf("after STARTTLS: %v", caps)
	}
	c.send("e LOGIN alice@example.test alice-secret\r\n")
	c.untilTagged("e")
	c.send("f CAPABILITY\r\n")
	got := capList(c.untilTagged("f")[0])
	want := []string{"IMAP4rev2", "IMAP4rev1", "IDLE", "MOVE", "UIDPLUS", "NAMESPACE", "SPECIAL-USE", "CREATE-SPECIAL-USE",
		"ESEARCH", "SEARCHRES", "LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE", "UNSELECT", "ENABLE", "LITERAL+", "SASL-IR",
		"APPENDLIMIT=52428800", "UTF8=ACCEPT", "BINARY", "CHILDREN", "QUOTA", "QUOTA=RES-STORAGE", "ID", "CONDSTORE", "QRESYNC", "WITHIN", "PREVIEW",
		"LITERAL-"} // LITERAL- is added by imapserver itself next to LITERAL+
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("capabilities after login:\n got %v\nwant %v", got, want)
	}
}

func TestInsecureAuthOnlyWhenAllowed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowInsecureAuth = true })
	c, err := imapclient.DialInsecure(e.plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, alicePW).Wait(); err != nil {
		t.Fatalf("dev-mode cleartext login: %v", err)
	}
}

func TestLoginAndAuthenticate(t *testing.T) {
	e := newEnv(t, nil)
	c := dialRaw(t, e.plain)
	c.send("a STARTTLS\r\n")
	c.expectPrefix("a OK")
	c.startTLS()
	c.send("b AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1zZWNyZXQ=\r\n") // \0alice@example.test\0alice-secret
	if l := c.untilTagged("b"); !strings.HasPrefix(l[len(l)-1], "b OK") {
		t.Fatalf("AUTHENTICATE PLAIN with SASL-IR: %v", l)
	}

	bad, err := imapclient.DialTLS(e.implicit, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	for i := 0; i < 3; i++ {
		if err := bad.Login("Alice@Example.test", "wrong").Wait(); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	if err := bad.Login(alice, alicePW).Wait(); err != nil {
		t.Fatalf("right password after failures: %v", err)
	}
	want := `level=WARN msg="auth failed" proto=imap ip=127.0.0.1 user=alice@example.test`
	if n := strings.Count(e.logs.String(), want); n != 3 {
		t.Errorf("%d lines %q in log, want 3:\n%s", n, want, e.logs.String())
	}
}

func listNames(t *testing.T, c *imapclient.Client, ref, pattern string, opts *imap.ListOptions) map[string][]imap.MailboxAttr {
	t.Helper()
	l, err := c.List(ref, pattern, opts).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q: %v", ref, pattern, err)
	}
	out := map[string][]imap.MailboxAttr{}
	for _, d := range l {
		out[d.Mailbox] = d.Attrs
	}
	return out
}

func wantCode(t *testing.T, err error, code imap.ResponseCode) {
	t.Helper()
	imapErr, ok := err.(*imap.Error)
	if !ok || imapErr.Code != code {
		t.Errorf("got %v, want NO [%s]", err, code)
	}
}

func TestMailboxManagement(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login(t, alice, alicePW, nil)

	if err := c.Create("Projects/2026/Q1", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	all := listNames(t, c, "", "*", nil)
	for _, n := range []string{"INBOX", "Sent", "Projects", "Projects/2026", "Projects/2026/Q1"} {
		if _, ok := all[n]; !ok {
			t.Errorf("LIST * lacks %q: %v", n, all)
		}
	}
	if !slices.Contains(all["Sent"], imap.MailboxAttrSent) || !slices.Contains(all["Projects"], imap.MailboxAttrHasChildren) ||
		!slices.Contains(all["Projects/2026/Q1"], imap.MailboxAttrHasNoChildren) {
		t.Errorf("attributes: %v", all)
	}
	top := listNames(t, c, "", "%", nil)
	if _, ok := top["Projects/2026"]; ok || len(top) != 7 {
		t.Errorf("LIST %% = %v", top)
	}
	if sub := listNames(t, c, "Projects/", "%", nil); len(sub) != 1 || sub["Projects/2026"] == nil {
		t.Errorf("LIST Projects/ %% = %v", sub)
	}
	if err := c.Create("projects/x", nil).Wait(); err != nil { // names are case-sensitive
		t.Errorf("CREATE projects/x: %v", err)
	}
	wantCode(t, c.Create("Projects", nil).Wait(), imap.ResponseCodeAlreadyExists)
	wantCode(t, c.Create("INBOX", nil).Wait(), imap.ResponseCodeAlreadyExists)
	wantCode(t, c.Create("Bad//Name", nil).Wait(), imap.ResponseCodeCannot)
	wantCode(t, c.Create(strings.Repeat("deep/", 40)+"x", nil).Wait(), imap.ResponseCodeCannot)
	wantCode(t, c.Create("Everything", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrAll}}).Wait(), "USEATTR")
	if err := c.Create("Receipts", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrArchive}}).Wait(); err != nil {
		t.Errorf("CREATE USE (\\Archive): %v", err)
	}
	wantCode(t, c.Delete("Projects").Wait(), imap.ResponseCodeHasChildren)
	wantCode(t, c.Delete("INBOX").Wait(), imap.ResponseCodeCannot)
	wantCode(t, c.Delete("Nope").Wait(), imap.ResponseCodeNonExistent)
	wantCode(t, c.Rename("Nope", "Other", nil).Wait(), imap.ResponseCodeNonExistent)
	wantCode(t, c.Rename("Sent", "Drafts", nil).Wait(), imap.ResponseCodeAlreadyExists)

	q1, _ := c.Status("Projects/2026/Q1", &imap.StatusOptions{UIDValidity: true}).Wait()
	if err := c.Rename("Projects", "Work/Old", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	all = listNames(t, c, "", "*", nil)
	for _, n := range []string{"Work", "Work/Old", "Work/Old/2026", "Work/Old/2026/Q1"} {
		if _, ok := all[n]; !ok {
			t.Errorf("after RENAME, %q missing: %v", n, all)
		}
	}
	if _, ok := all["Projects/2026"]; ok {
		t.Errorf("old child still listed")
	}
	renamed, _ := c.Status("Work/Old/2026/Q1", &imap.StatusOptions{UIDValidity: true}).Wait()
	if renamed == nil || renamed.UIDValidity != q1.UIDValidity {
		t.Errorf("RENAME changed UIDVALIDITY of a child: %+v %+v", q1, renamed)
	}
	for _, n := range []string{"Work/Old/2026/Q1", "Work/Old/2026"} {
		if err := c.Delete(n).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create("Work/Old/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	again, _ := c.Status("Work/Old/2026", &imap.StatusOptions{UIDValidity: true}).Wait()
	if again.UIDValidity == q1.UIDValidity {
		t.Error("re-created mailbox reuses a UIDVALIDITY")
	}

	// SUBSCRIBE / UNSUBSCRIBE / LSUB / LIST (SUBSCRIBED).
	if err := c.Unsubscribe("Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Subscribe("Nope").Wait(), imap.ResponseCodeNonExistent)
	subs := listNames(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})
	if _, ok := subs["Junk"]; ok || subs["INBOX"] == nil || !slices.Contains(subs["INBOX"], imap.MailboxAttrSubscribed) {
		t.Errorf("LIST (SUBSCRIBED): %v", subs)
	}
	rc := dialRaw(t, e.plain)
	rc.send("a STARTTLS\r\n")
	rc.expectPrefix("a OK")
	rc.startTLS()
	rc.send("b LOGIN alice@example.test alice-secret\r\nc LSUB \"\" \"*\"\r\n")
	rc.untilTagged("b")
	lsub := strings.Join(rc.untilTagged("c"), "\n")
	if !strings.Contains(lsub, `* LSUB`) || strings.Contains(lsub, "Junk") || !strings.Contains(lsub, "INBOX") {
		t.Errorf("LSUB:\n%s", lsub)
	}
	rc.send("c2 LIST \"\" \"\"\r\n")
	if l := rc.untilTagged("c2"); l[0] != `* LIST (\Noselect) "/" ""` {
		t.Errorf("LIST \"\" \"\": %q", l)
	}
	rc.send("d LIST \"\" \"%\" RETURN (SPECIAL-USE STATUS (MESSAGES SIZE))\r\n")
	ls := strings.Join(rc.untilTagged("d"), "\n")
	if !strings.Contains(ls, `\Trash`) || !strings.Contains(ls, `* STATUS INBOX (MESSAGES 0 SIZE 0)`) {
		t.Errorf("LIST RETURN (SPECIAL-USE STATUS):\n%s", ls)
	}
	rc.send("e LIST (SPECIAL-USE) \"\" \"*\"\r\n")
	ls = strings.Join(rc.untilTagged("e"), "\n")
	if strings.Contains(ls, "INBOX") || !strings.Contains(ls, `\Sent`) {
		t.Errorf("LIST (SPECIAL-USE):\n%s", ls)
	}

	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
		t.Errorf("NAMESPACE: %v %+v", err, ns)
	}
}

func TestRenameInboxMovesMessages(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, "one")
	e.deliver(t, "two")
	c := e.login(t, alice, alicePW, nil)
	if err := c.Rename("INBOX", "Old Inbox", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("Old Inbox", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 2 {
		t.Fatalf("renamed INBOX: %v %+v", err, st)
	}
	st, err = c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
	if err != nil || *st.NumMessages != 0 || st.UIDNext != 3 {
		t.Fatalf("INBOX after rename: %v %+v", err, st)
	}
}

func appendMsg(t *testing.T, c *imapclient.Client, mailbox string, msg []byte, opts *imap.AppendOptions) *imap.AppendData {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(msg)), opts)
	if _, err := cmd.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	return data
}

func TestMessageCommands(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login(t, alice, alicePW, nil)
	date := time.Date(2025, 5, 6, 7, 8, 9, 0, time.FixedZone("", 2*3600))
	multipart := []byte("From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nfirst part findme\r\n" +
		"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--XX--\r\n")
	a1 := appendMsg(t, c, "INBOX", testMessage("hello", "plain body"), &imap.AppendOptions{Flags: []imap.Flag{`\SEEN`, "$Work"}, Time: date})
	a2 := appendMsg(t, c, "INBOX", multipart, nil)
	a3 := appendMsg(t, c, "INBOX", []byte("Subject: bare\nFrom: x@example.test\n\nlf only\n"), nil)
	if a1.UID != 1 || a2.UID != 2 || a3.UID != 3 || a1.UIDValidity == 0 {
		t.Fatalf("APPENDUID: %+v %+v %+v", a1, a2, a3)
	}
	wantCode(t, func() error {
		cmd := c.Append("Nope", 1, nil)
		cmd.Write([]byte("x"))
		cmd.Close()
		_, err := cmd.Wait()
		return err
	}(), imap.ResponseCodeTryCreate)

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 || sel.UIDNext != 4 || sel.UIDValidity != a1.UIDValidity ||
		!slices.Contains(sel.PermanentFlags, imap.FlagWildcard) || !slices.Contains(sel.Flags, "$Work") {
		t.Errorf("SELECT: %+v", sel)
	}

	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("FETCH: %v %d", err, len(msgs))
	}
	m := msgs[0]
	if !slices.Equal(withoutRecent(m.Flags), []imap.Flag{imap.FlagSeen, "$Work"}) || !slices.Contains(m.Flags, flagRecent) || !m.InternalDate.Equal(date) ||
		m.RFC822Size != int64(len(testMessage("hello", "plain body"))) || m.Envelope.Subject != "hello" ||
		m.Envelope.From[0].Host != "example.test" || m.Envelope.MessageID != "hello@example.test" {
		t.Errorf("FETCH 1: %+v %+v", m, m.Envelope)
	}
	if mp, ok := msgs[1].BodyStructure.(*imap.BodyStructureMultiPart); !ok || len(mp.Children) != 2 || mp.Subtype != "mixed" {
		t.Errorf("BODYSTRUCTURE 2: %#v", msgs[1].BodyStructure)
	}
	if msgs[2].RFC822Size != int64(len("Subject: bare\r\nFrom: x@example.test\r\n\r\nlf only\r\n")) {
		t.Errorf("bare-LF message not stored CRLF-normalised: size %d", msgs[2].RFC822Size)
	}

	// Body sections, partial, BINARY; .PEEK leaves \Seen alone, BODY[] sets it.
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
	part1 := &imap.FetchItemBodySection{Part: []int{1}, Peek: true}
	partial := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 10}}
	bin := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{hdr, part1, partial},
		BinarySection: []*imap.FetchItemBinarySection{bin}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH sections: %v", err)
	}
	if got := string(msgs[0].FindBodySection(hdr)); got != "Subject: parts\r\n\r\n" {
		t.Errorf("HEADER.FIELDS (Subject) = %q", got)
	}
	if got := string(msgs[0].FindBodySection(part1)); got != "first part findme" {
		t.Errorf("BODY[1] = %q", got)
	}
	if got := string(msgs[0].FindBodySection(partial)); got != string(multipart[:10]) {
		t.Errorf("BODY[]<0.10> = %q", got)
	}
	if got := string(msgs[0].FindBinarySection(bin)); got != "hello" {
		t.Errorf("BINARY[2] = %q", got)
	}
	if slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Error("BODY.PEEK set \\Seen")
	}
	full := &imap.FetchItemBodySection{}
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{full}}).Collect()
	if err != nil || !bytes.Equal(msgs[0].FindBodySection(full), multipart) || !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("BODY[]: %v, flags %v", err, msgs[0].Flags)
	}

	// STORE: canonical case, keywords persist, .SILENT returns nothing.
	got, err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{`\FLAGGED`, "$work", "Todo"}}, nil).Collect()
	if err != nil || len(got) != 1 || !slices.Equal(withoutRecent(got[0].Flags), []imap.Flag{imap.FlagFlagged, "$work", "Todo"}) {
		t.Fatalf("STORE +FLAGS: %v %+v", err, got)
	}
	got, err = c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{"todo"}}, nil).Collect()
	if err != nil || len(got) != 0 {
		t.Fatalf("STORE -FLAGS.SILENT: %v %+v", err, got)
	}
	uidGot, err := c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsSet, Flags: []imap.Flag{`\Answered`, "$work"}}, nil).Collect()
	if err != nil || len(uidGot) != 1 || uidGot[0].UID != 3 || !slices.Equal(withoutRecent(uidGot[0].Flags), []imap.Flag{imap.FlagAnswered, "$work"}) {
		t.Fatalf("UID STORE FLAGS: %v %+v", err, uidGot)
	}

	// SEARCH: flags, dates, header, body, text, size, sets, NOT, OR.
	for _, tc := range []struct {
		name string
		c    imap.SearchCriteria
		want []uint32
	}{
		{"SEEN", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, []uint32{1, 2}},
		{"UNSEEN", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{3}},
		{"KEYWORD", imap.SearchCriteria{Flag: []imap.Flag{"$WORK"}}, []uint32{1, 3}},
		{"BEFORE", imap.SearchCriteria{Before: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}, []uint32{1}},
		{"SINCE", imap.SearchCriteria{Since: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}, []uint32{2, 3}},
		{"SENTBEFORE", imap.SearchCriteria{SentBefore: time.Date(2007, 1, 1, 0, 0, 0, 0, time.UTC)}, []uint32{1}},
		{"HEADER", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "PART"}}}, []uint32{2}},
		{"BODY", imap.SearchCriteria{Body: []string{"FINDME"}}, []uint32{2}},
		{"TEXT", imap.SearchCriteria{Text: []string{"bare"}}, []uint32{3}},
		{"LARGER", imap.SearchCriteria{Larger: 200}, []uint32{1, 2}},
		{"SMALLER", imap.SearchCriteria{Smaller: 200}, []uint32{3}},
		{"UID", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(2, 3, 99)}}, []uint32{2, 3}},
		{"SEQ", imap.SearchCriteria{SeqNum: []imap.SeqSet{{imap.SeqRange{Start: 2, Stop: 0}}}}, []uint32{2, 3}},
		{"NOT", imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagAnswered}}}}, []uint32{1, 2}},
		{"OR", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagAnswered}}, {Body: []string{"plain body"}}}}}, []uint32{1, 3}},
	} {
		res, err := c.UIDSearch(&tc.c, nil).Wait()
		if err != nil {
			t.Errorf("SEARCH %s: %v", tc.name, err)
			continue
		}
		var uids []uint32
		for _, u := range res.AllUIDs() {
			uids = append(uids, uint32(u))
		}
		if !slices.Equal(uids, tc.want) {
			t.Errorf("UID SEARCH %s = %v, want %v", tc.name, uids, tc.want)
		}
	}
	res, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, &imap.SearchOptions{ReturnCount: true, ReturnMin: true, ReturnMax: true}).Wait()
	if err != nil || res.Count != 2 || res.Min != 1 || res.Max != 2 {
		t.Errorf("ESEARCH COUNT MIN MAX: %v %+v", err, res)
	}

	// COPY and MOVE with COPYUID; the copy shares the body.
	cp, err := c.Copy(imap.SeqSetNum(1, 2), "Archive").Wait()
	if err != nil || cp.UIDValidity == 0 || cp.SourceUIDs.String() != "1:2" || cp.DestUIDs.String() != "1:2" {
		t.Fatalf("COPY: %v %+v", err, cp)
	}
	wantCode(t, func() error { _, err := c.Copy(imap.SeqSetNum(1), "Nope").Wait(); return err }(), imap.ResponseCodeTryCreate)
	mv, err := c.Move(imap.UIDSetNum(1), "Trash").Wait()
	if err != nil || mv.SourceUIDs.String() != "1" || mv.DestUIDs.String() != "1" {
		t.Fatalf("MOVE: %v %+v", err, mv)
	}
	st, _ := c.Status("Archive", &imap.StatusOptions{NumMessages: true, Size: true}).Wait()
	if *st.NumMessages != 2 {
		t.Errorf("Archive after COPY: %+v", st)
	}

	// EXPUNGE and UID EXPUNGE: INBOX now holds UIDs 2, 3.
	if _, err := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	seqs, err := c.UIDExpunge(imap.UIDSetNum(3)).Collect()
	if err != nil || !slices.Equal(seqs, []uint32{2}) {
		t.Fatalf("UID EXPUNGE 3: %v %v", err, seqs)
	}
	seqs, err = c.Expunge().Collect()
	if err != nil || !slices.Equal(seqs, []uint32{1}) {
		t.Fatalf("EXPUNGE: %v %v", err, seqs)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := c.Mailbox().NumMessages; n != 0 {
		t.Errorf("client thinks %d messages remain", n)
	}

	// EXAMINE is read-only: STORE refused, BODY[] does not set \Seen, CLOSE expunges nothing.
	if _, err := c.Select("Archive", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err == nil {
		t.Error("STORE in EXAMINE accepted")
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Errorf("CLOSE after EXAMINE: %v", err)
	}
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Errorf("UNSELECT: %v", err)
	}
	st, _ = c.Status("Archive", &imap.StatusOptions{NumMessages: true, NumUnseen: true, NumDeleted: true}).Wait()
	if *st.NumMessages != 2 || *st.NumDeleted != 0 {
		t.Errorf("Archive: %+v", st)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("NOOP: %v", err)
	}
}

// waitFor polls cond until it holds, failing after a generous guard (not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPushAcrossSessions(t *testing.T) {
	e := newEnv(t, nil)
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		e.deliver(t, s)
	}
	type update struct {
		kind string
		n    uint32
	}
	updates := make(chan update, 100)
	h := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				updates <- update{kind: "exists", n: *d.NumMessages}
			}
		},
		Expunge: func(seq uint32) { updates <- update{kind: "expunge", n: seq} },
		Fetch: func(m *imapclient.FetchMessageData) {
			m.Collect()
			updates <- update{kind: "fetch", n: m.SeqNum}
		},
	}
	idler := e.login(t, alice, alicePW, h)
	if _, err := idler.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	other := e.login(t, alice, alicePW, nil)
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := idler.Idle()
	if err != nil {
		t.Fatal(err)
	}
	next := func(kind string) update {
		t.Helper()
		select {
		case u := <-updates:
			if u.kind != kind {
				t.Fatalf("got %+v, want %s", u, kind)
			}
			return u
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s pushed", kind)
		}
		return update{}
	}
	e.deliver(t, "f")
	if u := next("exists"); u.n != 6 {
		t.Errorf("IDLE: %d EXISTS, want 6", u.n)
	}
	if _, err := other.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if u := next("fetch"); u.n != 3 {
		t.Errorf("flag change pushed for seq %d, want 3", u.n)
	}
	// Expunge UIDs 2 and 4: the idler must hear 2, then 3 (UID 4 moved up after 2 went).
	if _, err := other.Store(imap.SeqSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	next("fetch")
	next("fetch")
	if _, err := other.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	if a, b := next("expunge"), next("expunge"); a.n != 2 || b.n != 3 {
		t.Errorf("EXPUNGE %d, %d; want 2, 3", a.n, b.n)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := idler.Fetch(imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var uids []imap.UID
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	if !slices.Equal(uids, []imap.UID{1, 3, 5, 6}) {
		t.Errorf("after expunges the idler sees UIDs %v, want [1 3 5 6]", uids)
	}
}

func TestSelectedMailboxDeletedOrRenamed(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.login(t, alice, alicePW, nil)
	for _, n := range []string{"Doomed", "Moving"} {
		if err := admin.Create(n, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	appendMsg(t, admin, "Moving", testMessage("m", "x"), nil)

	victim := e.login(t, alice, alicePW, nil)
	if _, err := victim.Select("Doomed", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete("Doomed").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := victim.Noop().Wait(); err == nil {
		t.Error("NOOP on a deleted selected mailbox succeeded")
	}
	select {
	case <-victim.Closed():
	case <-time.After(10 * time.Second):
		t.Error("session with a deleted mailbox was not ended")
	}

	mover := e.login(t, alice, alicePW, nil)
	if _, err := mover.Select("Moving", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Rename("Moving", "Moved", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := mover.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "m" {
		t.Errorf("FETCH after rename of the selected mailbox: %v %v", err, msgs)
	}
	if err := admin.Noop().Wait(); err != nil {
		t.Errorf("server unhappy: %v", err)
	}
}

func TestOutOfStepSessionEndsAlone(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(t, "x")
	broken := e.login(t, alice, alicePW, nil)
	healthy := e.login(t, alice, alicePW, nil)
	for _, c := range []*imapclient.Client{broken, healthy} {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// Feed one view an expunge of a UID it never saw added: the view cannot follow.
	var target *view
	e.srv.hub.mu.Lock()
	for v := range e.srv.hub.views[e.mailboxID(t, "INBOX")] {
		target = v
		break
	}
	e.srv.hub.mu.Unlock()
	target.enqueue(storeEvent(999))
	broken.Noop().Wait()
	healthy.Noop().Wait()
	waitFor(t, "out-of-step log line", func() bool { return strings.Contains(e.logs.String(), "out of step") })
	closed := 0
	for _, c := range []*imapclient.Client{broken, healthy} {
		select {
		case <-c.Closed():
			closed++
		case <-time.After(200 * time.Millisecond):
		}
	}
	if closed != 1 {
		t.Errorf("%d sessions ended, want exactly the out-of-step one", closed)
	}
	e.deliver(t, "y")
	third := e.login(t, alice, alicePW, nil)
	if sel, err := third.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 2 {
		t.Errorf("server after out-of-step session: %v %+v", err, sel)
	}
}

func TestConnectionLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnsPerIP = 3; c.MaxConnsPerAccount = 2 })
	e.login(t, alice, alicePW, nil)
	e.login(t, alice, alicePW, nil)
	third, err := imapclient.DialTLS(e.implicit, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	wantCode(t, third.Login(alice, alicePW).Wait(), imap.ResponseCodeLimit)
	// The fourth connection from this address is turned away at once.
	r := &raw{t: t}
	c, err := dialPlain(e.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r.conn = c
	r.r = newReader(c)
	if l := r.line(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("fourth connection: %q", l)
	}
}

func TestIdleTimeoutEndsSilentClients(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IdleTimeout = time.Second })
	c := e.login(t, alice, alicePW, nil)
	select {
	case <-c.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("silent client not disconnected")
	}
	// IDLE keeps a client: it re-issues IDLE within the timeout.
	d := e.login(t, alice, alicePW, nil)
	if _, err := d.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		idle, err := d.Idle()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatalf("IDLE round %d: %v", i, err)
		}
	}
}

func TestShutdownSaysBye(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login(t, alice, alicePW, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("session survived Shutdown")
	}
}
