"""Capacity: how many replicas serve a workload's peak within its latency objective, with N+1 spares.

A replica is one copy of the model on ``gpu_count`` GPUs. Its capacity is read from a serving profile: the
concurrency level with the most output tokens/s whose p95 latencies meet the workload's objective. The
profile measured tokens/s, so a replica serves ``tokens/s ÷ the workload's mean output tokens`` requests/s.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from modelyard.catalog.serving import Level, ServingProfile
from modelyard.economics.org import Slo

#: Seconds in an average month (30.4375 days): converts monthly volume to a request rate.
SECONDS_PER_MONTH = Decimal("30.4375") * 86400
#: A level with more errors than this is overloaded, whatever its throughput.
MAX_ERROR_RATE = 0.01


@dataclass(frozen=True, slots=True)
class ReplicaCapacity:
    requests_per_s: Decimal
    level: Level
    #: ``True``: the level's p95 latencies meet the objective; ``None``: the source published no latency.
    meets_slo: bool | None


def ceil(x: Decimal) -> int:
    return int(x.to_integral_value(rounding=ROUND_CEILING))


def _meets(level: Level, slo: Slo) -> bool | None:
    checks = [(slo.ttft_p95_ms, level.ttft_p95_ms), (slo.e2e_p95_ms, level.e2e_p95_ms)]
    verdict: bool | None = True
    for objective, value in checks:
        if objective is None:
            continue
        if value is None:
            verdict = None
        elif value > objective:
            return False
    return verdict


def replica_capacity(
    profile: ServingProfile, output_tokens_mean: Decimal, slo: Slo
) -> ReplicaCapacity | None:
    """The best level that meets ``slo`` (or has unknown latency); ``None`` if every level misses it."""
    usable = [
        (lvl, ok)
        for lvl in profile.levels
        if lvl.error_rate <= MAX_ERROR_RATE and (ok := _meets(lvl, slo)) is not False
    ]
    if not usable:
        return None
    level, ok = max(usable, key=lambda pair: pair[0].output_tokens_per_s)
    rps = Decimal(str(level.output_tokens_per_s)) / max(output_tokens_mean, Decimal(1))
    return ReplicaCapacity(requests_per_s=rps, level=level, meets_slo=ok)


def replicas_for(rate_rps: Decimal, replica_rps: Decimal, headroom: Decimal, redundancy: int) -> int:
    """Serving replicas for ``rate × headroom`` (at least one), plus ``redundancy`` spares."""
    serving = max(ceil(rate_rps * headroom / replica_rps), 1)
    return serving + redundancy


def peak_rps(requests_per_month: Decimal, peak_to_avg: Decimal) -> Decimal:
    return requests_per_month / SECONDS_PER_MONTH * peak_to_avg


def fixed_replica_hours(
    requests_per_month: Decimal,
    peak_to_avg: Decimal,
    replica_rps: Decimal,
    headroom: Decimal,
    redundancy: int,
    hours_per_month: Decimal,
) -> tuple[int, Decimal]:
    """A pool sized for the peak all month: (replicas, replica-hours billed)."""
    n = replicas_for(peak_rps(requests_per_month, peak_to_avg), replica_rps, headroom, redundancy)
    return n, n * hours_per_month


def autoscaled_replica_hours(
    requests_per_month: Decimal,
    hour_of_day: list[Decimal],
    replica_rps: Decimal,
    headroom: Decimal,
    redundancy: int,
    hours_per_month: Decimal,
) -> tuple[int, Decimal]:
    """Replicas follow the hour-of-day load (each hour's rate × headroom), spares always on.

    Returns (the largest replica count, replica-hours billed)."""
    avg = requests_per_month / SECONDS_PER_MONTH
    counts = [replicas_for(avg * 24 * share, replica_rps, headroom, redundancy) for share in hour_of_day]
    return max(counts), sum((Decimal(c) for c in counts), Decimal(0)) * hours_per_month / 24


def utilization(requests_per_month: Decimal, replicas: int, replica_rps: Decimal) -> Decimal:
    """Average load over the pool's total capacity (spares included)."""
    return requests_per_month / SECONDS_PER_MONTH / (replicas * replica_rps)
