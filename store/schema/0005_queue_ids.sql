-- Schema 5: queue IDs are never reused. A plain INTEGER PRIMARY KEY hands the ID of the newest
-- entry out again once that entry is delivered, so `queue retry 7` or an admin page open since
-- could act on a different message. AUTOINCREMENT (in a rebuilt table) prevents that.

CREATE TABLE queue_new (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	blob_id        INTEGER NOT NULL REFERENCES blobs(id),
	mail_from      TEXT NOT NULL,
	rcpt           TEXT NOT NULL,
	domain         TEXT NOT NULL,
	created        INTEGER NOT NULL,
	next_attempt   INTEGER NOT NULL,
	attempts       INTEGER NOT NULL DEFAULT 0,
	last_error     TEXT NOT NULL DEFAULT '',
	requiretls     INTEGER NOT NULL DEFAULT 0,
	smtputf8       INTEGER NOT NULL DEFAULT 0,
	eightbit       INTEGER NOT NULL DEFAULT 0,
	last_attempt   INTEGER NOT NULL DEFAULT 0,
	delay_notified INTEGER NOT NULL DEFAULT 0,
	last_host      TEXT NOT NULL DEFAULT ''
);
INSERT INTO queue_new (id, blob_id, mail_from, rcpt, domain, created, next_attempt, attempts, last_error,
	requiretls, smtputf8, eightbit, last_attempt, delay_notified, last_host)
	SELECT id, blob_id, mail_from, rcpt, domain, created, next_attempt, attempts, last_error,
	requiretls, smtputf8, eightbit, last_attempt, delay_notified, last_host FROM queue;
DROP TABLE queue;
ALTER TABLE queue_new RENAME TO queue;
CREATE INDEX queue_next ON queue(next_attempt);
CREATE INDEX queue_blob ON queue(blob_id);
CREATE INDEX queue_domain ON queue(domain);
