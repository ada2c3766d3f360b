-- Schema 1: the core of a mail store. Forward-only; later changes go in new numbered files.

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- Opaque durable values owned by other packages (ACME cache, fallback certificate, MTA-STS cache).
CREATE TABLE kv (
	key     TEXT PRIMARY KEY,
	value   BLOB NOT NULL,
	updated INTEGER NOT NULL
);

-- Monotonic counters that must never go backwards (UIDVALIDITY).
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);

CREATE TABLE domains (
	id      INTEGER PRIMARY KEY,
	name    TEXT NOT NULL UNIQUE, -- lower-case A-label form
	created INTEGER NOT NULL
);

CREATE TABLE accounts (
	id            INTEGER PRIMARY KEY,
	domain_id     INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
	address       TEXT NOT NULL UNIQUE, -- lower-case local@domain
	password_hash TEXT NOT NULL,
	is_admin      INTEGER NOT NULL DEFAULT 0,
	quota         INTEGER NOT NULL DEFAULT 0, -- bytes; 0 means unlimited
	created       INTEGER NOT NULL
);

-- An alias address delivers to one or more local accounts. "@domain" is the catch-all of domain.
CREATE TABLE aliases (
	id         INTEGER PRIMARY KEY,
	address    TEXT NOT NULL,
	domain_id  INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	UNIQUE (address, account_id)
);
CREATE INDEX aliases_account ON aliases(account_id);

CREATE TABLE mailboxes (
	id            INTEGER PRIMARY KEY,
	account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	special_use   TEXT NOT NULL DEFAULT '',
	uidvalidity   INTEGER NOT NULL,
	uidnext       INTEGER NOT NULL DEFAULT 1,
	highestmodseq INTEGER NOT NULL DEFAULT 1,
	subscribed    INTEGER NOT NULL DEFAULT 1,
	UNIQUE (account_id, name)
);

-- Message bodies: CRLF-normalised RFC 5322 bytes, shared by every copy of a message.
CREATE TABLE blobs (
	id   INTEGER PRIMARY KEY,
	size INTEGER NOT NULL,
	data BLOB NOT NULL
);

CREATE TABLE messages (
	id            INTEGER PRIMARY KEY,
	mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid           INTEGER NOT NULL,
	modseq        INTEGER NOT NULL,
	flags         TEXT NOT NULL DEFAULT '', -- space-separated system flags and keywords, canonical case
	internal_date INTEGER NOT NULL,         -- unix seconds
	size          INTEGER NOT NULL,         -- len(prefix) + blob size
	prefix        BLOB NOT NULL,            -- per-copy header lines (Return-Path, Delivered-To)
	blob_id       INTEGER NOT NULL REFERENCES blobs(id),
	envelope      BLOB,                     -- parsed at delivery by the store's Describe hook
	structure     BLOB,
	UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_blob ON messages(blob_id);

-- Outbound queue: one row per remote recipient.
CREATE TABLE queue (
	id           INTEGER PRIMARY KEY,
	blob_id      INTEGER NOT NULL REFERENCES blobs(id),
	mail_from    TEXT NOT NULL,
	rcpt         TEXT NOT NULL,
	domain       TEXT NOT NULL,
	created      INTEGER NOT NULL,
	next_attempt INTEGER NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	requiretls   INTEGER NOT NULL DEFAULT 0,
	smtputf8     INTEGER NOT NULL DEFAULT 0,
	eightbit     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_next ON queue(next_attempt);
CREATE INDEX queue_blob ON queue(blob_id);
