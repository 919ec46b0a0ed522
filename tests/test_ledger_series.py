"""The console's series (ledger/series.py): per time bucket and group, the same figures as a Python
reference computes from the rows, on SQLite and on the real PostgreSQL; and its bounds."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from typing import Any

import pytest

from modelyard.ledger.schema import RequestRow
from modelyard.ledger.series import SeriesQuery
from modelyard.ledger.store import open_store
from tests.ledger_support import pg_url, request, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name

SINCE = 1_700_000_000
STEP = 600


def _rows() -> list[RequestRow]:
    rng = random.Random(7)
    rows = []
    for i in range(400):
        status = 200 if rng.random() > 0.1 else rng.choice([429, 502])
        priced = rng.random() > 0.2
        rows.append(
            request(
                i,
                # Some rows before and after the window: they must not count.
                ts=SINCE - 300 + rng.random() * (STEP * 12 + 600),
                tenant=rng.choice(["acme", "globex", "initech", None]),
                model=rng.choice(["gpt-x", "claude-y"]),
                status=status,
                latency_ms=round(rng.lognormvariate(5, 0.6), 3),
                cost_pico_usd=rng.randrange(1, 10**9) if priced else None,
                priced=priced,
            )
        )
    return rows


def _reference(rows: list[RequestRow], query: SeriesQuery) -> dict[Any, dict[int, dict[str, Any]]]:
    cells: dict[Any, dict[int, list[RequestRow]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if query.since <= row.ts < query.until:
            group = getattr(row, query.by) if query.by else None
            cells[group][int((row.ts - query.since) // query.step)].append(row)
    out: dict[Any, dict[int, dict[str, Any]]] = {}
    for group, buckets in cells.items():
        for bucket, members in buckets.items():
            ok = sorted(r.latency_ms for r in members if r.status < 400)
            cuts = statistics.quantiles(ok, n=100, method="inclusive") if len(ok) > 1 else ok * 99
            costs = [r.cost_pico_usd for r in members if r.cost_pico_usd is not None]
            out.setdefault(group, {})[bucket] = {
                "requests": len(members),
                "errors": sum(r.status >= 400 for r in members),
                "cost_pico": sum(costs) if costs else None,
                "unpriced": len(members) - len(costs),
                "latency": {p: cuts[p - 1] for p in (50, 95, 99)} if ok else {},
            }
    return out


@pytest.mark.parametrize("by", [None, "tenant", "model"])
def test_series_per_bucket_and_group_equal_the_python_reference(store_url: str, by: Any) -> None:
    rows = _rows()
    store = open_store(store_url)
    try:
        store.insert(rows, [])
        query = SeriesQuery(since=SINCE, until=SINCE + STEP * 12, step=STEP, by=by, groups=12)
        series = store.series(query)
    finally:
        store.close()
    reference = _reference(rows, query)
    assert set(series.groups) == set(reference)
    for group in series.groups:
        got = {
            bucket: {
                "requests": f.requests,
                "errors": f.errors,
                "cost_pico": f.cost_pico,
                "unpriced": f.unpriced,
                "latency": f.latency_ms,
            }
            for bucket, f in series.points[group].items()
        }
        assert got == reference[group]
        assert series.totals[group].requests == sum(b["requests"] for b in reference[group].values())
    body = series.to_json()
    assert len(body["buckets"]) == 12 and body["buckets"][1] == SINCE + STEP


def test_series_draws_the_largest_groups_and_counts_the_others(store_url: str) -> None:
    # tenant t0 has 1 request, t1 2, ... t5 6; anonymous (NULL) 4, as many as t3: a named group wins a tie.
    rows = [
        request(n, ts=SINCE + n, tenant=f"t{k}")
        for n, k in enumerate(k for k in range(6) for _ in range(k + 1))
    ]
    rows += [request(100 + n, ts=SINCE + 100 + n, tenant=None) for n in range(4)]
    store = open_store(store_url)
    try:
        store.insert(rows, [])
        three = store.series(SeriesQuery(SINCE, SINCE + 3600, 600, by="tenant", groups=3))
        four = store.series(SeriesQuery(SINCE, SINCE + 3600, 600, by="tenant", groups=4))
    finally:
        store.close()
    assert three.groups == ["t5", "t4", "t3"]
    assert three.other_groups == 4  # t0, t1, t2 and the anonymous requests
    assert [three.totals[g].requests for g in three.groups] == [6, 5, 4]
    assert four.groups == ["t5", "t4", "t3", None] and four.totals[None].requests == 4


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (SeriesQuery(SINCE, SINCE, 600), "until"),
        (SeriesQuery(SINCE, SINCE + 400 * 86_400, 86_400), "days"),
        (SeriesQuery(SINCE, SINCE + 3600, 10), "step"),
        (SeriesQuery(SINCE, SINCE + 86_400 * 30, 600), "buckets"),
        (SeriesQuery(SINCE, SINCE + 3600, 600, groups=500), "groups"),
        (SeriesQuery(SINCE, SINCE + 3600, 600, by="request_id; DROP TABLE requests"), "allowed"),  # type: ignore[arg-type]
    ],
)
def test_a_query_outside_its_bounds_is_refused_before_any_sql(query: SeriesQuery, message: str) -> None:
    def run(sql: str, params: Any) -> list[Any]:
        raise AssertionError(f"no SQL may run: {sql}")

    from modelyard.ledger.series import series_in_database

    with pytest.raises(ValueError, match=message):
        series_in_database(run, query, "?", lambda since, step: "0")
