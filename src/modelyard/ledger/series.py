"""Spend, tokens, requests, errors and latency percentiles per time bucket and per group: the console's
charts, computed inside the database by the queries of :mod:`modelyard.ledger.summary_sql`.

A time bucket is one more grouping column: the requests table seen through a derived table that adds
``bucket`` (``floor((ts - since) / step)`` as text, so that the rank query's NULL-safe join on text keys
serves it unchanged). Floor is spelled per database (:func:`sqlite_bucket`, :func:`postgres_bucket`):
PostgreSQL's ``CAST`` of a double rounds where SQLite's truncates.

Everything a client can ask for is bounded before any SQL runs (:meth:`SeriesQuery.check`): the window,
the number of buckets and the number of groups drawn (the largest by requests; the rest are counted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelyard.ledger.sql import RequestFilter
from modelyard.ledger.summary import pico_to_usd, usd_text
from modelyard.ledger.summary_sql import GroupTotals, Key, Run, group_totals, rank_percentiles

Dimension = Literal["workload", "tenant", "model", "provider"]
DIMENSIONS: tuple[Dimension, ...] = ("workload", "tenant", "model", "provider")

#: p50, p95 and p99, as cuts of 100 quantiles.
PERCENTILES = (50, 95, 99)
_OF = 100

#: Bounds on what a client may ask (hostile clients included): each query sorts at most one window.
MAX_WINDOW_S = 366 * 86_400
MAX_BUCKETS = 240
MIN_STEP_S = 60
MAX_GROUPS = 12

#: SQL of a bucket number as text, from the window's start and the step (integers, checked).
BucketSql = Callable[[int, int], str]


def sqlite_bucket(since: int, step: int) -> str:
    # ts >= since in every query that reads the bucket, so truncation is the floor.
    return f"CAST(CAST((ts - {since}) / {step} AS INTEGER) AS TEXT)"


def postgres_bucket(since: int, step: int) -> str:
    return f"CAST(CAST(FLOOR((ts - {since}) / {step}) AS BIGINT) AS TEXT)"


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """``[since, until)`` in unix seconds cut into buckets of ``step`` seconds, optionally per ``by``."""

    since: int
    until: int
    step: int
    by: Dimension | None = None
    #: How many groups to draw: the largest by requests in the window.
    groups: int = 8

    @property
    def buckets(self) -> int:
        return -(-(self.until - self.since) // self.step)

    def check(self) -> None:
        """Raise ``ValueError`` naming the parameter when the query is outside the bounds."""
        if self.until <= self.since:
            raise ValueError("until: must be after since")
        if self.until - self.since > MAX_WINDOW_S:
            raise ValueError(f"since: the window is at most {MAX_WINDOW_S // 86_400} days")
        if self.step < MIN_STEP_S:
            raise ValueError(f"step: at least {MIN_STEP_S} seconds")
        if self.buckets > MAX_BUCKETS:
            raise ValueError(f"step: at most {MAX_BUCKETS} buckets per window; use a longer step")
        if self.by is not None and self.by not in DIMENSIONS:
            raise ValueError(f"by: cannot group by {self.by!r}; allowed: {', '.join(DIMENSIONS)}")
        if not 1 <= self.groups <= MAX_GROUPS:
            raise ValueError(f"groups: between 1 and {MAX_GROUPS}")


@dataclass(slots=True)
class Figures:
    """One group's (or one bucket of one group's) figures. Latency percentiles are over successful
    requests; ``cost_pico`` is None when none of the requests has a price (never $0)."""

    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_pico: int | None
    unpriced: int
    latency_ms: dict[int, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        cost = None if self.cost_pico is None else usd_text(pico_to_usd(self.cost_pico))
        figures: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": cost,
            "unpriced": self.unpriced,
        }
        for cut in PERCENTILES:
            figures[f"latency_p{cut}_ms"] = self.latency_ms.get(cut)
        return figures


@dataclass(slots=True)
class Series:
    query: SeriesQuery
    #: The groups drawn, largest first (None: requests without that column, e.g. anonymous tenants).
    groups: list[str | None]
    #: Groups in the window left out of the drawing (beyond ``query.groups``).
    other_groups: int
    #: Per drawn group, its figures over the whole window.
    totals: dict[str | None, Figures]
    #: Per drawn group, bucket number → figures (buckets without requests are absent).
    points: dict[str | None, dict[int, Figures]]

    def to_json(self) -> dict[str, Any]:
        q = self.query
        starts = [q.since + i * q.step for i in range(q.buckets)]
        return {
            "since": q.since,
            "until": q.until,
            "step": q.step,
            "by": q.by,
            "buckets": starts,
            "other_groups": self.other_groups,
            "groups": [
                {
                    "name": name,
                    "totals": self.totals[name].to_json(),
                    "points": [
                        {"bucket": starts[i], **figures.to_json()}
                        for i, figures in sorted(self.points.get(name, {}).items())
                    ],
                }
                for name in self.groups
            ],
        }


def series_in_database(run: Run, query: SeriesQuery, placeholder: str, bucket_sql: BucketSql) -> Series:
    """The figures of ``query`` from at most seven queries (top groups, their count, totals and
    percentiles per group, the same per group and bucket)."""
    query.check()
    where_sql, params = RequestFilter(since=query.since, until=query.until).where(placeholder)
    keys: tuple[str, ...] = ()
    groups: list[str | None] = [None]
    other = 0
    if query.by is not None:
        keys = (query.by,)
        groups, other = _largest_groups(run, query, where_sql, params)
        where_sql, params = _only(query.by, groups, where_sql, params, placeholder)
    totals = _figures(run, keys, (where_sql, params), placeholder, "requests")
    source = f"(SELECT *, {bucket_sql(query.since, query.step)} AS bucket FROM requests) AS requests"
    per_bucket = _figures(run, (*keys, "bucket"), (where_sql, params), placeholder, source)
    points: dict[str | None, dict[int, Figures]] = {}
    for key, figures in per_bucket.items():
        points.setdefault(key[0] if keys else None, {})[int(str(key[-1]))] = figures

    def group_key(group: str | None) -> Key:
        return (group,) if keys else ()

    drawn = [g for g in groups if group_key(g) in totals]
    return Series(
        query, drawn, other, {g: totals[group_key(g)] for g in drawn}, {g: points[g] for g in drawn}
    )


def _largest_groups(
    run: Run, query: SeriesQuery, where_sql: str, params: list[Any]
) -> tuple[list[str | None], int]:
    """The ``query.groups`` groups with the most requests, and how many other groups the window holds."""
    column, limit = query.by, query.groups
    # Ties broken alike on both databases: named groups before NULL (SQLite sorts NULL first, PostgreSQL
    # last), then by name.
    order = f"COUNT(*) DESC, {column} IS NULL, {column}"
    top = f"SELECT {column} FROM requests{where_sql} GROUP BY {column} ORDER BY {order} LIMIT {limit}"
    chosen = [row[0] for row in run(top, params)]
    count = f"SELECT COUNT(*) FROM (SELECT {column} FROM requests{where_sql} GROUP BY {column}) AS g"
    ((every,),) = list(run(count, params))
    return chosen, int(every) - len(chosen)


def _only(
    column: str, groups: Sequence[str | None], where_sql: str, params: list[Any], placeholder: str
) -> tuple[str, list[Any]]:
    """``where_sql`` narrowed to the requests of ``groups`` (NULL included when it is one of them)."""
    named = [g for g in groups if g is not None]
    tests = [f"{column} IN ({', '.join([placeholder] * len(named))})"] if named else []
    if len(named) < len(groups):
        tests.append(f"{column} IS NULL")
    test = " OR ".join(tests) or "1 = 0"
    glue = " AND " if where_sql else " WHERE "
    return f"{where_sql}{glue}({test})", [*params, *named]


def _figures(
    run: Run, keys: Sequence[str], where: tuple[str, list[Any]], placeholder: str, source: str
) -> dict[Key, Figures]:
    totals = group_totals(run, keys, where[0], where[1], source)
    counts = {key: t.successes for key, t in totals.items()}
    latency = rank_percentiles(
        run, keys, where, placeholder, "latency_ms", counts, PERCENTILES, of=_OF, source=source
    )
    return {key: _figures_of(t, latency.get(key, {})) for key, t in totals.items()}


def _figures_of(totals: GroupTotals, latency: dict[int, float]) -> Figures:
    return Figures(
        requests=totals.requests,
        errors=totals.errors,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cost_pico=totals.cost_pico if totals.priced else None,
        unpriced=totals.requests - totals.priced,
        latency_ms=latency,
    )
