package pop3test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"mailstead/pop3"
)

// Memory is an in-memory pop3.Backend: users with passwords and one INBOX
// each. It is safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	users  map[string]*memBox // by lower-case address
	nextID int64

	// DeleteErr, when set, is returned by Maildrop.Delete (nothing is removed).
	DeleteErr error
	// LoginErr, when set, is returned by Login for every user.
	LoginErr error
}

type memBox struct {
	key      string
	password string
	msgs     []memMsg
}

type memMsg struct {
	id   int64
	uidl string
	data []byte
}

// NewMemory returns an empty backend.
func NewMemory() *Memory {
	return &Memory{users: make(map[string]*memBox)}
}

// AddUser creates an account with an empty INBOX.
func (m *Memory) AddUser(user, password string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := strings.ToLower(user)
	m.users[key] = &memBox{key: key, password: password}
}

// Deliver appends raw to user's INBOX and returns its ID. The UIDL is
// derived from the ID, which is never reused.
func (m *Memory) Deliver(user string, raw []byte) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	box := m.users[strings.ToLower(user)]
	if box == nil {
		panic("pop3test: no user " + user)
	}
	m.nextID++
	box.msgs = append(box.msgs, memMsg{id: m.nextID, uidl: fmt.Sprintf("mem-%d", m.nextID), data: bytes.Clone(raw)})
	return m.nextID
}

// Expunge removes a message as IMAP would, behind any POP3 session's back.
func (m *Memory) Expunge(user string, id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	box := m.users[strings.ToLower(user)]
	box.msgs = removeIDs(box.msgs, map[int64]bool{id: true})
}

// Stored returns the messages in user's INBOX, oldest first.
func (m *Memory) Stored(user string) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for _, msg := range m.users[strings.ToLower(user)].msgs {
		out = append(out, bytes.Clone(msg.data))
	}
	return out
}

// UIDLs returns the UIDL of each message in user's INBOX, oldest first.
func (m *Memory) UIDLs(user string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, msg := range m.users[strings.ToLower(user)].msgs {
		out = append(out, msg.uidl)
	}
	return out
}

func removeIDs(msgs []memMsg, ids map[int64]bool) []memMsg {
	var kept []memMsg
	for _, msg := range msgs {
		if !ids[msg.id] {
			kept = append(kept, msg)
		}
	}
	return kept
}

// Login implements pop3.Backend.
func (m *Memory) Login(ctx context.Context, user, password string, remote net.Addr) (pop3.Maildrop, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.LoginErr != nil {
		return nil, m.LoginErr
	}
	box := m.users[strings.ToLower(user)]
	if box == nil || box.password != password {
		return nil, pop3.ErrAuthFailed
	}
	return &memDrop{m: m, box: box}, nil
}

type memDrop struct {
	m      *Memory
	box    *memBox
	closed bool
}

func (d *memDrop) Key() string { return d.box.key }

func (d *memDrop) Messages(ctx context.Context) ([]pop3.Message, error) {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	var out []pop3.Message
	for _, msg := range d.box.msgs {
		out = append(out, pop3.Message{ID: msg.id, UIDL: msg.uidl, Size: CRLFSize(msg.data)})
	}
	return out, nil
}

func (d *memDrop) Open(ctx context.Context, id int64) (io.ReadCloser, error) {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	for _, msg := range d.box.msgs {
		if msg.id == id {
			return io.NopCloser(bytes.NewReader(msg.data)), nil
		}
	}
	return nil, pop3.ErrGone
}

func (d *memDrop) Delete(ctx context.Context, ids []int64) error {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if d.m.DeleteErr != nil {
		return d.m.DeleteErr
	}
	set := make(map[int64]bool)
	for _, id := range ids {
		set[id] = true
	}
	d.box.msgs = removeIDs(d.box.msgs, set)
	return nil
}

func (d *memDrop) Close() error {
	if d.closed {
		panic("pop3test: maildrop closed twice")
	}
	d.closed = true
	return nil
}

// CRLFSize is the size of raw with every bare LF counted as CRLF: the
// pop3.Message.Size of a message stored as raw.
func CRLFSize(raw []byte) int64 {
	n := int64(len(raw))
	for i, b := range raw {
		if b == '\n' && (i == 0 || raw[i-1] != '\r') {
			n++
		}
	}
	return n
}
