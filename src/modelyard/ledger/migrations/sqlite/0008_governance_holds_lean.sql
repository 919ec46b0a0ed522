-- 0008: gov_holds as a WITHOUT ROWID table, and no expiry index (issue 15). Every reservation inserts a
-- hold and every settlement deletes it, each in a commit of its own when requests come one at a time:
-- a rowid table keeps the row, its primary-key index and the expiry index on three pages, so each commit
-- wrote three WAL frames for the hold alone; keyed by reservation it is one. The sweep, every
-- reservation_ttl_s / 4 at most, scans the table instead: it holds only the requests in flight.

CREATE TABLE gov_holds_lean (
    reservation TEXT PRIMARY KEY,
    lines TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
) WITHOUT ROWID;
INSERT INTO gov_holds_lean (reservation, lines, expires_at) SELECT reservation, lines, expires_at FROM gov_holds;
DROP TABLE gov_holds;
ALTER TABLE gov_holds_lean RENAME TO gov_holds
