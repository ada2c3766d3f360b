-- Large message bodies are kept as numbered chunks, so that neither storing nor reading one
-- needs it whole in memory. A body of at most one chunk stays inline in blobs.data; a larger
-- one has an empty blobs.data and its bytes in blob_chunks, seq 0, 1, ... in order.
-- blobs.size is always the body's full length.
CREATE TABLE blob_chunks (
	blob_id INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	data    BLOB NOT NULL,
	PRIMARY KEY (blob_id, seq)
);
