-- Schema 10: the DSN extension's parameters (RFC 3461) travel with each queued recipient, to be
-- passed on to a next hop that offers DSN and honoured in the reports this server writes.
-- dsn_notify: '' (not given: the defaults of §5.2.1), 'NEVER', or a comma list of SUCCESS,
-- FAILURE, DELAY. dsn_orcpt: the ORCPT address type and address, 'rfc822;bob@b.test' ('' = none).
-- dsn_ret: '', 'FULL' or 'HDRS'. dsn_envid: the ENVID, decoded ('' = none).
ALTER TABLE queue ADD COLUMN dsn_notify TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN dsn_orcpt TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN dsn_ret TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN dsn_envid TEXT NOT NULL DEFAULT '';
