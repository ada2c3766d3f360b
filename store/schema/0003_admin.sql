-- Schema 3: what the admin web page and the user page keep.

-- App passwords: random secrets a phone or desktop client uses instead of the account's own
-- password, each revocable on its own. They are long random strings, so a SHA-256 hash is enough
-- (no dictionary can reach them) and one indexed lookup checks them.
CREATE TABLE app_passwords (
	id         INTEGER PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE, -- hex SHA-256 of the password
	created    INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX app_passwords_account ON app_passwords(account_id);

-- Web sessions of the admin and user pages; the cookie holds the token, the table its hash.
CREATE TABLE web_sessions (
	hash       TEXT PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	created    INTEGER NOT NULL,
	expires    INTEGER NOT NULL
);
CREATE INDEX web_sessions_account ON web_sessions(account_id);

-- API tokens of admins for /api/ (Authorization: Bearer TOKEN).
CREATE TABLE api_tokens (
	id         INTEGER PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	created    INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0
);

-- Recent mail events for the admin page: deliveries, bounces, rejections. A bounded log (the
-- newest rows are kept), not an archive: the structured log lines remain the record.
CREATE TABLE mail_events (
	id        INTEGER PRIMARY KEY,
	at        INTEGER NOT NULL,
	kind      TEXT NOT NULL, -- "delivered", "received", "rejected", "deferred", "bounced"
	mail_from TEXT NOT NULL DEFAULT '',
	rcpt      TEXT NOT NULL DEFAULT '',
	remote    TEXT NOT NULL DEFAULT '', -- client IP or remote host
	detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mail_events_at ON mail_events(at);
