-- Schema 2: what the outbound queue needs beyond the core queue table.

-- When the last delivery attempt ran (unix seconds, 0 = never), and whether the sender has been
-- told that delivery is delayed (the notice goes out once, RFC 3464 Action: delayed).
ALTER TABLE queue ADD COLUMN last_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
-- The host that answered last, for `queue list` and the DSN's Remote-MTA field.
ALTER TABLE queue ADD COLUMN last_host TEXT NOT NULL DEFAULT '';

CREATE INDEX queue_domain ON queue(domain);
