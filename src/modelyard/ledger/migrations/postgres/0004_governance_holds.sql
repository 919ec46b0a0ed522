-- 0004: one row per reservation instead of one per line (issue 15): a reservation of three budgets writes
-- one row and one index entry, not three and three. The lines are three parallel arrays (counter, unit,
-- amount), unnested when the reservation is settled or swept. 0003's gov_reservations never shipped in a
-- release: it is dropped, not migrated (a hold in it would have expired within reservation_ttl_s anyway).

DROP TABLE gov_reservations;
CREATE TABLE gov_holds (
    reservation TEXT PRIMARY KEY,
    counters TEXT[] NOT NULL,
    units TEXT[] NOT NULL,
    amounts BIGINT[] NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX gov_holds_expiry ON gov_holds (expires_at);
