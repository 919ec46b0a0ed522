-- 0002: routing and policy audit (row schema version 2). See docs/ledger.md.
-- policy: the data-class decision (class, where it came from, what it allows, what was redacted);
-- cache_hit / cost_saved_pico_usd: answers served from the exact response cache and what they saved;
-- shadow_of: for a mirrored call, the request it shadows; attempts.purpose: answer, judge or shadow.

ALTER TABLE requests ADD COLUMN policy TEXT;
ALTER TABLE requests ADD COLUMN cache_hit BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE requests ADD COLUMN cost_saved_pico_usd BIGINT;
ALTER TABLE requests ADD COLUMN shadow_of TEXT;
ALTER TABLE attempts ADD COLUMN purpose TEXT NOT NULL DEFAULT 'answer';
