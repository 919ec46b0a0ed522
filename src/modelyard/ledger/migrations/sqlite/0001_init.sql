-- 0001: the request and attempt tables (row schema version 1). See docs/ledger.md for every column.
-- Migrations are append-only: never edit a file once released, add the next number instead.
-- Booleans are INTEGER 0/1; costs are integer pico-dollars (NULL = unpriced); ts is unix seconds.

CREATE TABLE requests (
    request_id          TEXT PRIMARY KEY,
    ts                  DOUBLE PRECISION NOT NULL,
    endpoint            TEXT NOT NULL,
    workload            TEXT,
    data_class          TEXT,
    tenant              TEXT,
    api_key_id          TEXT,
    model               TEXT NOT NULL,
    provider            TEXT,
    provider_kind       TEXT,
    upstream_model      TEXT,
    status              INTEGER NOT NULL,
    error_kind          TEXT,
    streamed            INTEGER NOT NULL,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
    usage_estimated     INTEGER NOT NULL DEFAULT 0,
    cost_pico_usd       BIGINT,
    priced              INTEGER NOT NULL DEFAULT 0,
    price_version       TEXT,
    latency_ms          DOUBLE PRECISION NOT NULL DEFAULT 0,
    ttft_ms             DOUBLE PRECISION,
    upstream_latency_ms DOUBLE PRECISION,
    overhead_ms         DOUBLE PRECISION,
    attempts            INTEGER NOT NULL DEFAULT 0,
    retries             INTEGER NOT NULL DEFAULT 0,
    finish_reason       TEXT,
    client_cancelled    INTEGER NOT NULL DEFAULT 0,
    route               TEXT,
    prompt              TEXT,
    completion          TEXT
);

CREATE INDEX requests_ts ON requests (ts);
CREATE INDEX requests_workload_ts ON requests (workload, ts);

CREATE TABLE attempts (
    request_id          TEXT NOT NULL,
    attempt             INTEGER NOT NULL,
    ts                  DOUBLE PRECISION NOT NULL,
    provider            TEXT NOT NULL,
    provider_kind       TEXT NOT NULL,
    upstream_model      TEXT NOT NULL,
    status              INTEGER NOT NULL,
    error_kind          TEXT,
    latency_ms          DOUBLE PRECISION NOT NULL,
    ttft_ms             DOUBLE PRECISION,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
    usage_estimated     INTEGER NOT NULL DEFAULT 0,
    cost_pico_usd       BIGINT,
    priced              INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (request_id, attempt)
);

