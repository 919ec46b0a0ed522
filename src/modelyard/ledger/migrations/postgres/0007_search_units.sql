-- 0007: search units of each request and attempt (row schema version 5). See docs/ledger.md.
-- Rerank APIs that bill per search rather than per token (Cohere: one query with up to 100 documents, a
-- long document's chunks counting separately) are metered in search units; 0 for every other call, as the
-- token columns are 0 where nothing was billed in tokens.

ALTER TABLE requests ADD COLUMN search_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN search_units INTEGER NOT NULL DEFAULT 0;
