-- 0005: what a request was for (row schema version 3). See docs/ledger.md.
-- purpose: 'answer' (a client's request), 'shadow' (a shadow route's mirror), 'eval' (an eval run's candidate
-- call) or 'judge' (an eval run's grading call); eval_run_id: the eval run that made an 'eval'/'judge' call.
-- Rows stored before 0005 that mirror another request are shadows: they are marked so here. The index is
-- partial: the gateway's own answers (nearly every row) never touch it; eval, judge and shadow reads use it.

ALTER TABLE requests ADD COLUMN purpose TEXT NOT NULL DEFAULT 'answer';
ALTER TABLE requests ADD COLUMN eval_run_id TEXT;
UPDATE requests SET purpose = 'shadow' WHERE shadow_of IS NOT NULL;
CREATE INDEX requests_purpose_ts ON requests (purpose, ts) WHERE purpose <> 'answer';
