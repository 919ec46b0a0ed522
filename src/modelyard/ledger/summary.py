"""Per-group figures over ledger requests, computed in Python so both backends agree to the last digit.

Costs are summed as Python integers of pico-dollars (exact, no overflow) and reported as ``Decimal``
dollars. Requests without a price are counted apart in ``unpriced``; a group whose requests are all
unpriced has ``cost_usd = None``, never ``$0``. Latency percentiles come from :func:`statistics.quantiles`
(the "inclusive" method, which matches numpy's default linear interpolation).
"""

from __future__ import annotations

import statistics
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

GroupKey = Literal["workload", "model", "provider", "purpose"]
#: In the order of the first columns of ``sql.SUMMARY_COLUMNS``.
GROUP_KEYS: tuple[GroupKey, ...] = ("workload", "model", "provider", "purpose")


def pico_to_usd(pico: int) -> Decimal:
    """Exact dollars from integer pico-dollars (a Decimal built from digits and exponent never rounds)."""
    sign, digits, _ = Decimal(pico).as_tuple()
    return Decimal((sign, digits, -12))


def usd_text(amount: Decimal) -> str:
    """Plain decimal notation (``0.000000000123``, never ``1.23E-10``) for files and JSON."""
    return format(amount, "f")


@dataclass(slots=True)
class SummaryRow:
    """One group's figures. Group columns not in ``group_by`` are ``None``.

    An *error* is a request answered with HTTP status ≥ 400, or one with an ``error_kind`` (a stream cut
    after its 200 headers). Latency percentiles are over successful requests only, so fast failures do not
    flatter them; ``ttft_p50_ms`` over successful requests that report a first-token time.
    """

    workload: str | None = None
    model: str | None = None
    provider: str | None = None
    #: ``answer``, ``shadow``, ``eval`` or ``judge``: what the requests were for.
    purpose: str | None = None
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    #: Exact sum of the priced requests' costs; ``None`` when no request in the group has a price.
    cost_usd: Decimal | None = None
    unpriced: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    ttft_p50_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the cost as a decimal string so no reader rounds it through a float."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["cost_usd"] = None if self.cost_usd is None else usd_text(self.cost_usd)
        data["error_rate"] = self.error_rate
        return data


@dataclass(slots=True)
class _Accumulator:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_pico: int = 0
    priced: int = 0
    unpriced: int = 0
    # array('d') holds 8 bytes a value: a summary over millions of rows stays small.
    latencies: array[float] = field(default_factory=lambda: array("d"))
    ttfts: array[float] = field(default_factory=lambda: array("d"))


def summarise(rows: Iterable[Sequence[Any]], group_by: Sequence[GroupKey]) -> list[SummaryRow]:
    """Aggregate rows of ``store.SUMMARY_COLUMNS`` into one :class:`SummaryRow` per group, sorted by key.

    With an empty ``group_by`` the result is one row over everything (or nothing, when there are no rows).
    """
    for name in group_by:
        if name not in GROUP_KEYS:
            raise ValueError(f"cannot group by {name!r}; allowed: {', '.join(GROUP_KEYS)}")
    positions = [GROUP_KEYS.index(name) for name in group_by]
    groups: dict[tuple[str | None, ...], _Accumulator] = {}
    for row in rows:
        key = tuple(row[i] for i in positions)
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = _Accumulator()
        _add(acc, row)
    return [_finish(key, group_by, groups[key]) for key in sorted(groups, key=_sort_key)]


def _add(acc: _Accumulator, row: Sequence[Any]) -> None:
    _, _, _, _, status, error_kind, input_tokens, output_tokens, cost, latency, ttft = row
    acc.requests += 1
    acc.input_tokens += input_tokens
    acc.output_tokens += output_tokens
    if cost is None:
        acc.unpriced += 1
    else:
        acc.priced += 1
        acc.cost_pico += cost
    if status >= 400 or error_kind is not None:
        acc.errors += 1
        return
    acc.latencies.append(latency)
    if ttft is not None:
        acc.ttfts.append(ttft)


def _finish(key: tuple[str | None, ...], group_by: Sequence[GroupKey], acc: _Accumulator) -> SummaryRow:
    row = SummaryRow(
        requests=acc.requests,
        errors=acc.errors,
        input_tokens=acc.input_tokens,
        output_tokens=acc.output_tokens,
        cost_usd=pico_to_usd(acc.cost_pico) if acc.priced else None,
        unpriced=acc.unpriced,
        latency_p50_ms=percentile(acc.latencies, 50),
        latency_p95_ms=percentile(acc.latencies, 95),
        ttft_p50_ms=percentile(acc.ttfts, 50),
    )
    for name, value in zip(group_by, key, strict=True):
        setattr(row, name, value)
    return row


def percentile(values: Sequence[float], pct: int) -> float | None:
    """The ``pct``-th percentile (a multiple of 5) by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    if len(values) == 1:
        # Python 3.11's quantiles() needs two points; one point is its own every percentile.
        return float(values[0])
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return cuts[pct // 5 - 1]


def _sort_key(key: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    # NULL groups (requests with no workload) sort last instead of breaking the comparison.
    return tuple((part is None, part or "") for part in key)
