-- Schema 4: what `mailstead import` needs to be resumable without duplicates.

-- One row per message imported into a mailbox: the SHA-256 of its bytes. Importing the same file
-- again (or resuming an interrupted import) skips every message already present. Deleting the
-- mailbox forgets its fingerprints, so an import into a mailbox created anew starts afresh.
CREATE TABLE import_fingerprints (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	digest     BLOB NOT NULL,
	PRIMARY KEY (mailbox_id, digest)
) WITHOUT ROWID;
