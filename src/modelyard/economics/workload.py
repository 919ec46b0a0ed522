"""Workload profiles: what each workload asks of a model, computed from aggregated traffic.

Volume, token shape, hourly load, concurrency (Little's law: rate × latency), latency percentiles (from the
13%-wide log histogram, interpolated), data class, a growth trend fitted from daily volumes, and a class
in the vocabulary CTO frameworks use.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Literal

import numpy as np

from modelyard.economics.aggregate import BUCKETS_PER_E, HistRow, HourRow, Traffic
from modelyard.economics.org import OrgProfile
from modelyard.economics.vendors import Locus, locus

DAYS_PER_MONTH = Decimal("30.4375")
WorkloadClass = Literal[
    "high-volume repetitive", "low-volume high-importance", "sensitive data", "experimental"
]
_DATA_CLASS_ORDER = ["public", "internal", "confidential", "restricted"]
#: Fewer days than this and no growth trend is fitted (and the report says so).
MIN_DAYS_FOR_TREND = 14
#: A trace shorter than this, or with fewer calls, is flagged: its month is an extrapolation.
MIN_DAYS_FOR_CONFIDENCE = 14
MIN_CALLS_FOR_CONFIDENCE = 1000


@dataclass(frozen=True, slots=True)
class ModelUse:
    model: str
    provider_kind: str | None
    requests: int
    cost_usd: Decimal
    unpriced: int


@dataclass(frozen=True, slots=True)
class WorkloadProfile:
    name: str
    data_class: str
    days_observed: Decimal
    requests: int
    #: Current monthly volume (last 30 days, or the whole window if shorter), in requests.
    requests_per_month: Decimal
    input_tokens_mean: Decimal
    cached_input_tokens_mean: Decimal
    output_tokens_mean: Decimal
    avg_rps: float
    peak_rps: float
    peak_to_avg: float
    #: Mean share of daily requests in each UTC hour (24 values summing to 1).
    hour_of_day: list[float]
    mean_latency_ms: float
    concurrency_mean: float
    concurrency_peak: float
    latency_ms: dict[str, float]
    ttft_ms: dict[str, float | None]
    error_rate: float
    growth_per_month: float | None
    monthly_requests: dict[str, int]
    monthly_spend_usd: dict[str, Decimal]
    models: list[ModelUse]
    #: Calls of restricted data sent to an external API vendor.
    restricted_external: int
    workload_class: WorkloadClass
    latency_histogram: list[tuple[float, float, int]] = field(default_factory=list)
    #: Calls of restricted data sent to a provider of a kind we cannot place (see :mod:`.vendors`).
    restricted_unknown: int = 0
    #: ``measured`` from traffic, or ``planned`` in a plan file before any traffic exists (:mod:`.plan`).
    origin: Literal["measured", "planned"] = "measured"

    @property
    def thin_trace(self) -> str | None:
        """Why this workload's monthly figures are an extrapolation, or ``None`` when the trace is enough."""
        if self.origin == "planned":
            return None  # not extrapolated from a trace: stated (the planned condition says so)
        short = self.days_observed < MIN_DAYS_FOR_CONFIDENCE
        few = self.requests < MIN_CALLS_FOR_CONFIDENCE
        if not (short or few):
            return None
        why = []
        if short:
            why.append(f"fewer than {MIN_DAYS_FOR_CONFIDENCE} days")
        if few:
            why.append(f"fewer than {MIN_CALLS_FOR_CONFIDENCE:,} calls")
        return (
            f"extrapolated from {self.days_observed:.1f} days and {self.requests:,} calls "
            f"({' and '.join(why)}): volume, peak and growth are thin evidence"
        )


def build_profiles(traffic: Traffic, org: OrgProfile) -> list[WorkloadProfile]:
    """One profile per workload in ``traffic``, sorted by name."""
    hours: dict[str, list[HourRow]] = defaultdict(list)
    for row in traffic.hours:
        hours[row.workload].append(row)
    hist: dict[str, list[HistRow]] = defaultdict(list)
    for h in traffic.histogram:
        hist[h.workload].append(h)
    return [_profile(name, hours[name], hist[name], org) for name in sorted(hours)]


def _profile(name: str, rows: list[HourRow], hist: list[HistRow], org: OrgProfile) -> WorkloadProfile:
    per_hour: dict[int, int] = defaultdict(int)
    for r in rows:
        per_hour[r.hour] += r.requests
    first, last = min(per_hour), max(per_hour)
    span_hours = (last - first) // 3600 + 1
    days = Decimal(span_hours) / 24
    n = sum(r.requests for r in rows)
    recent_from = last - 30 * 86400
    recent = sum(c for h, c in per_hour.items() if h > recent_from)
    recent_days = min(days, Decimal(30))
    avg_rps = n / (span_hours * 3600)
    peak_rps = max(per_hour.values()) / 3600
    mean_latency = sum(r.latency_ms_sum for r in rows) / n
    policy = org.workloads.get(name)
    data_class = _data_class(rows, policy.data_class if policy else None)
    lat = _percentiles([(h.latency_bucket, h.count) for h in hist])
    ttft_buckets = [(h.ttft_bucket, h.count) for h in hist if h.ttft_bucket is not None]
    ttft: dict[str, float | None] = (
        _percentiles(ttft_buckets) if ttft_buckets else {"p50": None, "p95": None, "p99": None}
    )
    per_month = recent * DAYS_PER_MONTH / recent_days
    growth = _fit_growth(per_hour, days)
    profile_class = classify(
        per_month, data_class, days, policy is not None and policy.quality_floor is not None
    )
    return WorkloadProfile(
        name=name,
        data_class=data_class,
        days_observed=days,
        requests=n,
        requests_per_month=per_month,
        input_tokens_mean=Decimal(sum(r.input_tokens for r in rows)) / n,
        cached_input_tokens_mean=Decimal(sum(r.cached_input_tokens for r in rows)) / n,
        output_tokens_mean=Decimal(sum(r.output_tokens for r in rows)) / n,
        avg_rps=avg_rps,
        peak_rps=peak_rps,
        peak_to_avg=peak_rps / avg_rps if avg_rps else 0.0,
        hour_of_day=_hour_of_day(per_hour),
        mean_latency_ms=mean_latency,
        concurrency_mean=avg_rps * mean_latency / 1000,
        concurrency_peak=peak_rps * mean_latency / 1000,
        latency_ms={k: v for k, v in lat.items() if v is not None},
        ttft_ms=ttft,
        error_rate=sum(r.errors for r in rows) / n,
        growth_per_month=growth,
        monthly_requests=_by_month(rows, lambda r: r.requests),
        monthly_spend_usd={
            k: Decimal(v) / 10**12 for k, v in _by_month(rows, lambda r: r.cost_pico_usd).items()
        },
        models=_models(rows),
        restricted_external=_to_external(rows, data_class, "external"),
        restricted_unknown=_to_external(rows, data_class, "unknown"),
        workload_class=profile_class,
        latency_histogram=_histogram([(h.latency_bucket, h.count) for h in hist]),
    )


def _to_external(rows: list[HourRow], data_class: str, where: Locus) -> int:
    """Calls of restricted data that went to a provider at ``where``.

    The workload's class is the stricter of the org profile's and the traffic's, so once it is restricted
    every call of the workload carries restricted data, whatever its own row says."""
    return sum(
        r.requests
        for r in rows
        if (data_class == "restricted" or r.data_class == "restricted") and locus(r.provider_kind) == where
    )


def _data_class(rows: list[HourRow], declared: str | None) -> str:
    """The most restrictive class seen in traffic or declared in the org profile."""
    seen = {r.data_class for r in rows if r.data_class in _DATA_CLASS_ORDER}
    if declared:
        seen.add(declared)
    return max(seen, key=_DATA_CLASS_ORDER.index) if seen else "internal"


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The latency range (ms) of a histogram bucket."""
    return math.exp(bucket / BUCKETS_PER_E) - 1, math.exp((bucket + 1) / BUCKETS_PER_E) - 1


def _percentiles(buckets: list[tuple[int, int]]) -> dict[str, float | None]:
    merged: dict[int, int] = defaultdict(int)
    for b, c in buckets:
        merged[b] += c
    total = sum(merged.values())
    out: dict[str, float | None] = {}
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        if total == 0:
            out[label] = None
            continue
        target, seen = q * total, 0
        for b in sorted(merged):
            if seen + merged[b] >= target:
                lo, hi = bucket_bounds(b)
                out[label] = lo + (hi - lo) * (target - seen) / merged[b]
                break
            seen += merged[b]
    return out


def _histogram(buckets: list[tuple[int, int]]) -> list[tuple[float, float, int]]:
    merged: dict[int, int] = defaultdict(int)
    for b, c in buckets:
        merged[b] += c
    return [(*bucket_bounds(b), merged[b]) for b in sorted(merged)]


def _fit_growth(per_hour: dict[int, int], days: Decimal) -> float | None:
    """Monthly growth from a least-squares fit of log(daily requests); ``None`` with too little history."""
    if days < MIN_DAYS_FOR_TREND:
        return None
    daily: dict[int, int] = defaultdict(int)
    for h, c in per_hour.items():
        daily[h // 86400] += c
    first, last = min(daily), max(daily)
    # Drop the partial first and last day so a window edge is not read as a trend.
    xs = np.array([d for d in daily if first < d < last], dtype=float)
    if xs.size < MIN_DAYS_FOR_TREND - 2:
        return None
    ys = np.log(np.array([max(daily[int(d)], 1) for d in xs], dtype=float))
    slope = float(np.polyfit(xs, ys, 1)[0])
    return math.exp(slope * float(DAYS_PER_MONTH)) - 1


def _hour_of_day(per_hour: dict[int, int]) -> list[float]:
    counts = [0] * 24
    for h, c in per_hour.items():
        counts[(h // 3600) % 24] += c
    total = sum(counts) or 1
    return [c / total for c in counts]


def _by_month(rows: list[HourRow], get: Callable[[HourRow], int]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        out[_month_of_day(r.hour // 86400)] += int(get(r))
    return dict(sorted(out.items()))


@lru_cache(maxsize=8192)
def _month_of_day(day: int) -> str:
    """``YYYY-MM`` of a UTC day number: formatted once per day, not once per hourly row."""
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m")


def _models(rows: list[HourRow]) -> list[ModelUse]:
    acc: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        a = acc[(r.model, r.provider_kind)]
        a[0] += r.requests
        a[1] += r.cost_pico_usd
        a[2] += r.unpriced
    return sorted(
        (ModelUse(m, k, a[0], Decimal(a[1]) / 10**12, a[2]) for (m, k), a in acc.items()),
        key=lambda u: -u.requests,
    )


def classify(per_month: Decimal, data_class: str, days: Decimal, important: bool) -> WorkloadClass:
    if data_class in ("restricted", "confidential"):
        return "sensitive data"
    if per_month >= 100_000:
        return "high-volume repetitive"
    if per_month < 10_000 and not important:
        return "experimental"
    return "low-volume high-importance"
