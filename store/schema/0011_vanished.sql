-- Schema 11: which UIDs left each mailbox at which MODSEQ, so a QRESYNC client (RFC 7162 §3.2.5)
-- learns exactly what was expunged since its last MODSEQ. Kept as long as the mailbox.
CREATE TABLE vanished (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid        INTEGER NOT NULL,
	modseq     INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX vanished_modseq ON vanished(mailbox_id, modseq);
