-- Schema 7: IMAP state that outlives a mailbox row, and \Recent.
--
-- RFC 3501 §6.3.6: the server must not remove a name from the subscription list when its
-- mailbox is deleted, and LIST (SUBSCRIBED) then shows it \NonExistent (RFC 5258 §3.1). A
-- mailbox's own subscription stays in mailboxes.subscribed; this table holds the subscribed
-- names that have no mailbox (any more), until the name is created again or unsubscribed.
CREATE TABLE orphan_subscriptions (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	PRIMARY KEY (account_id, name)
);

-- \Recent (RFC 3501 §2.3.2): messages with a UID at or above first_recent_uid have not yet been
-- announced to any IMAP4rev1 session. Mail already there is not new to anyone.
ALTER TABLE mailboxes ADD COLUMN first_recent_uid INTEGER NOT NULL DEFAULT 1;
UPDATE mailboxes SET first_recent_uid = uidnext;
