-- Schema 9: SCRAM-SHA-256 credentials (RFC 5802, RFC 7677). Each row is the StoredKey and
-- ServerKey of one password: the account's own (app_password_id NULL) or one of its app
-- passwords (an app password may have two rows: as shown, in groups of five, and as typed
-- without spaces). Every row of an account has the same salt and count, so the one salt the
-- server sends first fits each of its passwords. Rows are derived when a password is set, and
-- for older accounts at their next successful PLAIN or LOGIN.
CREATE TABLE scram_sha256 (
	id              INTEGER PRIMARY KEY,
	account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	app_password_id INTEGER REFERENCES app_passwords(id) ON DELETE CASCADE,
	salt            BLOB NOT NULL,
	iterations      INTEGER NOT NULL,
	stored_key      BLOB NOT NULL,
	server_key      BLOB NOT NULL
);
CREATE INDEX scram_sha256_account ON scram_sha256(account_id);
