-- Schema 8: a queue row is claimed with a lease before it is attempted. The scheduler picks due
-- rows and leases them in one write transaction, so no two attempts of one row can run at once;
-- completion deletes the row (delivered, bounced) or clears the lease with the next attempt
-- (deferred). lease_owner names the queue instance holding the lease ('' = none) and lease_until
-- (unix seconds, 0 = none) is when another instance may take the row over.
ALTER TABLE queue ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
