"""The ledger summary computed inside the database, so that no store ever holds every row in memory.

The figures are the same as :func:`modelyard.ledger.summary.summarise` computes from rows in Python, to
the last digit, on SQLite and PostgreSQL alike:

- counts and token sums are one ``GROUP BY`` query;
- the cost is summed exactly as two integer halves, ``SUM(cost >> 32)`` and ``SUM(cost & 0xFFFFFFFF)``,
  joined in Python (``high << 32 | low`` as Python integers). A plain ``SUM(cost_pico_usd)`` would stop
  with "integer overflow" in SQLite once a group's total passes 2⁶³ pico-dollars ($9.2 million), and
  the halves cannot overflow below 2³¹ (two billion) rows in one group;
- percentiles are exact, not approximated: knowing each group's count from the first query, Python lists
  the sorted positions each percentile needs (two per percentile); a window query ranks each group's
  latencies (``ROW_NUMBER() OVER (PARTITION BY group ORDER BY latency_ms)``, an external sort inside the
  database, spilling to disk rather than to memory) and returns only the rows at those positions, which
  Python interpolates with the very arithmetic of ``statistics.quantiles(method="inclusive")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.ledger.sql import RequestFilter
from modelyard.ledger.summary import GROUP_KEYS, GroupKey, SummaryRow, pico_to_usd

#: Runs one query with its parameters and returns its rows (each store passes its own driver call).
Run = Callable[[str, Sequence[Any]], Iterable[Sequence[Any]]]

#: A successful request: percentiles are over these only, so fast failures do not flatter them.
_OK = "status < 400 AND error_kind IS NULL"
#: Percentiles as ``i``-th cuts of 20 (the 50th is cut 10): the arithmetic of ``statistics.quantiles``.
_CUTS = 20
_LATENCY_CUTS = (10, 19)
_TTFT_CUTS = (10,)
#: (group, position) pairs per rank query: keeps its parameters under SQLite's limit of 32,766 (a pair is at
#: most 7 parameters). Only a summary of more than ~1,000 groups needs a second query (and sort).
_PAIRS_PER_QUERY = 4_000

Key = tuple[str | None, ...]


@dataclass(slots=True)
class GroupTotals:
    """One group's counts and exact sums, as :func:`aggregate_sql` returns them."""

    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    priced: int
    cost_high: int
    cost_low: int
    #: Successful requests that report a first-token time (the ttft percentile's population).
    ttft_count: int

    @property
    def successes(self) -> int:
        return self.requests - self.errors

    @property
    def cost_pico(self) -> int:
        return (self.cost_high << 32) + self.cost_low


def summarise_in_database(
    run: Run, group_by: Sequence[GroupKey], where: RequestFilter, placeholder: str
) -> list[SummaryRow]:
    """One :class:`SummaryRow` per group, sorted by key (NULL groups last), from three queries."""
    for name in group_by:
        if name not in GROUP_KEYS:
            raise ValueError(f"cannot group by {name!r}; allowed: {', '.join(GROUP_KEYS)}")
    where_sql, params = where.where(placeholder)
    totals = group_totals(run, group_by, where_sql, params)
    counts = {key: t.successes for key, t in totals.items()}
    latency = rank_percentiles(
        run, group_by, (where_sql, params), placeholder, "latency_ms", counts, _LATENCY_CUTS
    )
    counts = {key: t.ttft_count for key, t in totals.items()}
    ttft = rank_percentiles(run, group_by, (where_sql, params), placeholder, "ttft_ms", counts, _TTFT_CUTS)
    return [
        _finish(key, group_by, totals[key], latency.get(key, {}), ttft.get(key, {}))
        for key in sorted(totals, key=_group_order)
    ]


def group_totals(
    run: Run, group_by: Sequence[str], where_sql: str, params: Sequence[Any], source: str = "requests"
) -> dict[Key, GroupTotals]:
    """Per group with at least one request: its counts and exact sums (one query)."""
    width = len(group_by)
    totals: dict[Key, GroupTotals] = {}
    for row in run(aggregate_sql(group_by, where_sql, source), params):
        # Drivers return SUM() as int (SQLite) or Decimal (PostgreSQL's NUMERIC): both exact; int() them.
        numbers = [0 if value is None else int(value) for value in row[width:]]
        totals[tuple(row[:width])] = GroupTotals(*numbers)
    return {key: t for key, t in totals.items() if t.requests}  # no GROUP BY: one row even when empty


def aggregate_sql(group_by: Sequence[str], where_sql: str, source: str = "requests") -> str:
    """Counts, token sums and the two halves of the cost sum, per group, over ``source`` (the requests
    table, or a derived table of it that adds a grouping column such as a time bucket)."""
    keys = ", ".join(group_by)
    figures = (
        "COUNT(*)",
        f"SUM(CASE WHEN {_OK} THEN 0 ELSE 1 END)",
        "SUM(input_tokens)",
        "SUM(output_tokens)",
        "COUNT(cost_pico_usd)",
        "SUM(cost_pico_usd >> 32)",
        "SUM(cost_pico_usd & 4294967295)",
        f"COUNT(CASE WHEN {_OK} THEN ttft_ms END)",
    )
    select = ", ".join([*group_by, *figures])
    return f"SELECT {select} FROM {source}{where_sql}" + (f" GROUP BY {keys}" if keys else "")


def ranks_sql(
    group_by: Sequence[str],
    where_sql: str,
    column: str,
    wanted: int,
    placeholder: str,
    source: str = "requests",
) -> str:
    """The ``column`` values of successful requests at ``wanted`` (group, sorted position) pairs.

    The pairs are parameters (see :func:`_pair_params`), before the filter's parameters. Group columns
    are text (a NULL is matched as ``('', true)``).
    """
    row = "(" + ", ".join([placeholder] * (2 * len(group_by) + 1)) + ")"
    names = "".join(f"{key}, {key}_null, " for key in group_by)
    keys = "".join(f"{key}, " for key in group_by)
    partition = f"PARTITION BY {', '.join(group_by)} " if group_by else ""
    ok = f"{where_sql} AND " if where_sql else " WHERE "
    # Plain equalities (no IS / OR for NULL keys), so that the join is a hash join in PostgreSQL and an
    # index lookup in SQLite: a NULL key is matched as ('', true), a value as (value, false). CROSS JOIN
    # makes SQLite stream the ranked rows as the outer loop and probe the small `wanted` table, instead of
    # scanning every ranked row once per wanted pair; PostgreSQL plans it as any inner join.
    same = "".join(f" AND COALESCE(r.{k}, '') = w.{k} AND (r.{k} IS NULL) = w.{k}_null" for k in group_by)
    return (
        f"WITH wanted({names}pos) AS (VALUES {', '.join([row] * wanted)}) "
        f"SELECT {''.join(f'r.{key}, ' for key in group_by)}r.pos, r.v FROM ("
        f"SELECT {keys}{column} AS v, ROW_NUMBER() OVER ({partition}ORDER BY {column}) - 1 AS pos "
        f"FROM {source}{ok}{_OK} AND {column} IS NOT NULL"
        f") r CROSS JOIN wanted w WHERE r.pos = w.pos{same}"
    )


def _pair_params(key: Key, position: int) -> list[Any]:
    """One row of the ``wanted`` table: each key as (text, is NULL), then the position."""
    return [*(value for part in key for value in (part or "", part is None)), position]


def rank_percentiles(
    run: Run,
    group_by: Sequence[str],
    where: tuple[str, Sequence[Any]],
    placeholder: str,
    column: str,
    counts: dict[Key, int],
    cuts: Sequence[int],
    *,
    of: int = _CUTS,
    source: str = "requests",
) -> dict[Key, dict[int, float]]:
    """Per group, cut → percentile of ``column`` over the group's ``counts[key]`` successful requests.

    ``cuts`` are ``i``-th cuts of ``of`` quantiles (of 100: the 99th percentile is cut 99).
    """
    pairs = [(key, position) for key, n in counts.items() for position in sorted(_positions(n, cuts, of))]
    where_sql, params = where
    values: dict[Key, dict[int, float]] = {}
    width = len(group_by)
    for first in range(0, len(pairs), _PAIRS_PER_QUERY):
        chunk = pairs[first : first + _PAIRS_PER_QUERY]
        wanted = [value for key, position in chunk for value in _pair_params(key, position)]
        sql = ranks_sql(group_by, where_sql, column, len(chunk), placeholder, source)
        for row in run(sql, [*wanted, *params]):
            values.setdefault(tuple(row[:width]), {})[int(row[width])] = float(row[width + 1])
    return {key: {i: interpolate(points, counts[key], i, of) for i in cuts} for key, points in values.items()}


def _positions(n: int, cuts: Sequence[int], of: int = _CUTS) -> set[int]:
    """The sorted positions :func:`interpolate` reads for these cuts of ``n`` values."""
    if n < 2:
        return set(range(n))
    return {j + step for i in cuts for j in (i * (n - 1) // of,) for step in (0, 1)}


def interpolate(sorted_values: dict[int, float], n: int, cut: int, of: int = _CUTS) -> float:
    """The ``cut``-th of ``of`` quantiles of ``n`` values, from the values at the positions it needs.

    The arithmetic of ``statistics.quantiles(data, n=of, method="inclusive")``, term for term, so the
    result is the same float; one value is its own every percentile.
    """
    if n == 1:
        return sorted_values[0]
    j, delta = divmod(cut * (n - 1), of)
    return (sorted_values[j] * (of - delta) + sorted_values[j + 1] * delta) / of


def _finish(
    key: Key,
    group_by: Sequence[GroupKey],
    totals: GroupTotals,
    latency: dict[int, float],
    ttft: dict[int, float],
) -> SummaryRow:
    row = SummaryRow(
        requests=totals.requests,
        errors=totals.errors,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cost_usd=pico_to_usd(totals.cost_pico) if totals.priced else None,
        unpriced=totals.requests - totals.priced,
        latency_p50_ms=latency.get(10),
        latency_p95_ms=latency.get(19),
        ttft_p50_ms=ttft.get(10),
    )
    for name, value in zip(group_by, key, strict=True):
        setattr(row, name, value)
    return row


def _group_order(key: Key) -> tuple[tuple[bool, str], ...]:
    # As summary.summarise sorts: NULL groups (requests with no workload) last.
    return tuple((part is None, part or "") for part in key)
