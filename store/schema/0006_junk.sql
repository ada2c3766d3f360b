-- Schema 6: the learning junk filter (package junk). Each account has its own model, kept here so
-- that it is in every backup; the store bounds it (JunkPrune) and makes training idempotent.

-- One row per account that has filter settings or training; no row means on, default threshold.
CREATE TABLE junk_accounts (
	account_id   INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
	enabled      INTEGER NOT NULL DEFAULT 1,
	threshold    REAL NOT NULL DEFAULT 0, -- 0: the filter's default
	ham          INTEGER NOT NULL DEFAULT 0, -- messages trained as ham
	spam         INTEGER NOT NULL DEFAULT 0,
	bootstrapped INTEGER NOT NULL DEFAULT 0  -- existing mail was used as training
);

-- Token counts. last_used is a unix day, so pruning can drop what is both old and rare.
CREATE TABLE junk_tokens (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	token      TEXT NOT NULL,
	ham        INTEGER NOT NULL DEFAULT 0,
	spam       INTEGER NOT NULL DEFAULT 0,
	last_used  INTEGER NOT NULL,
	PRIMARY KEY (account_id, token)
) WITHOUT ROWID;

-- Which message contents were trained, and as what: a second training of the same key with the
-- same class is a no-op, with the other class it moves the counts.
CREATE TABLE junk_trained (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	key        TEXT NOT NULL,
	spam       INTEGER NOT NULL,
	trained    INTEGER NOT NULL, -- unix seconds
	PRIMARY KEY (account_id, key)
) WITHOUT ROWID;

-- Reputation: addresses and domains the user wrote to or answered, Message-IDs they sent.
CREATE TABLE junk_marks (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	key        TEXT NOT NULL,
	marks      INTEGER NOT NULL,
	updated    INTEGER NOT NULL,
	PRIMARY KEY (account_id, key)
) WITHOUT ROWID;

-- What delivery filed where, per account and unix day, for the admin page's counter.
CREATE TABLE junk_filed (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	day        INTEGER NOT NULL,
	inbox      INTEGER NOT NULL DEFAULT 0,
	junk       INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (account_id, day)
) WITHOUT ROWID;
