-- 0004: one row per reservation instead of one per line (issue 15): a reservation of three budgets writes
-- one row and one index entry, not three and three (measured ~40% of a SQLite reservation's cost).
-- lines: JSON [[counter, unit, amount], ...]. 0003's gov_reservations never shipped in a release: it is
-- dropped, not migrated (a hold in it would have expired within reservation_ttl_s anyway).

DROP TABLE gov_reservations;
CREATE TABLE gov_holds (
    reservation TEXT PRIMARY KEY,
    lines TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX gov_holds_expiry ON gov_holds (expires_at);
