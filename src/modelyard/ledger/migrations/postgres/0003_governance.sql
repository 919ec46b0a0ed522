-- 0003: governance (issue 15). See docs/governance.md.
-- api_keys: runtime client keys, only their SHA-256 (as auth.keys in the config); revoked_at set = refused.
-- gov_counters: one row per budget counter (budget, subject, window start); amounts in the budget's unit
-- (pico-USD, tokens or requests). gov_reservations: what each in-flight request holds on each counter,
-- swept after expires_at. gov_alerts: thresholds already fired, so each fires once per window.

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    workloads TEXT NOT NULL DEFAULT '[]',
    data_class TEXT,
    limits TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    rotated_from TEXT
);
CREATE TABLE gov_counters (
    counter TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    limit_amount BIGINT NOT NULL,
    hard BOOLEAN NOT NULL,
    spent BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    window_end DOUBLE PRECISION NOT NULL
);
CREATE TABLE gov_reservations (
    reservation TEXT NOT NULL,
    counter TEXT NOT NULL,
    unit TEXT NOT NULL,
    amount BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (reservation, counter)
);
CREATE INDEX gov_reservations_expiry ON gov_reservations (expires_at);
CREATE TABLE gov_alerts (
    counter TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    fired_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (counter, threshold)
);
