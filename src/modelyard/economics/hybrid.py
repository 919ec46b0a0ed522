"""Hybrid options: one workload split between a self-hosted deployment and an API.

Two splits, each priced month by month like any option (:mod:`.tco` sums the two stacks' buckets):

- **base load + API overflow** (``hybrid:overflow``): the GPU pool is sized for the workload's *average*
  rate (× headroom, + spares), and the hours above the average go to the API. With the hour-of-day shape
  ``s_h`` (24 shares of the day's requests), the API carries ``Σ_h max(s_h − 1/24, 0)`` of the requests —
  the part of the daily curve above its mean. Offered when that share is positive (not for deferrable work,
  which a queue already flattens).
- **quality-critical share on the API** (``hybrid:quality``): the workload's ``quality_critical_pct`` of
  requests stays on the best-measured API model, the rest is self-hosted and the pool is sized for that rest.

Only feasible parts are combined, so the data class, latency objective and quality floor hold for both.
The API part is the cheapest feasible API-priced option (overflow) or the one with the highest measured
quality (quality share; the cheapest when none was measured).
"""

from __future__ import annotations

from decimal import Decimal

from modelyard.economics.formulas import marked_up, rate
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile, WorkloadPolicy
from modelyard.economics.tco import Demand

ONE = Decimal(1)


def overflow_share(hour_of_day: list[Decimal]) -> Decimal:
    """Share of the day's requests above the average hourly rate (what base-load sizing overflows)."""
    mean = sum(hour_of_day, Decimal(0)) / 24
    return sum((max(h - mean, Decimal(0)) for h in hour_of_day), Decimal(0))


def hybrid_options(options: list[Option], demand: Demand, workload: str, org: OrgProfile) -> list[Option]:
    """The hybrid splits for one workload, from its already-checked options."""
    feasible = [o for o in options if o.feasible]
    hosted = [o for o in feasible if o.kind == "self_hosted"]
    priced = [o for o in feasible if o.kind in ("api", "managed_open")]
    if not hosted or not priced:
        return []
    cheapest = min(priced, key=lambda o: (_marked_up(o, org), o.key))
    out: list[Option] = []
    share = overflow_share(demand.hour_of_day)
    if share > 0:
        out += [_combine(s, cheapest, share, ONE, "overflow", "peaks over the average") for s in hosted]
    critical = org.workloads.get(workload, WorkloadPolicy()).quality_critical_pct
    if critical:
        best = max(priced, key=lambda o: (o.quality if o.quality is not None else -1.0, -_marked_up(o, org)))
        q = critical / 100
        out += [
            _combine(s, best, q, (1 - q) * demand.peak_to_avg, "quality", "quality-critical") for s in hosted
        ]
    return out


def _marked_up(option: Option, org: OrgProfile) -> Decimal:
    """Price per request with the stack's hosting and risk markup: what one more API request costs."""
    assert option.price_per_request is not None
    s = {"api": org.stacks.api, "managed_open": org.stacks.managed_open}[option.kind]
    return marked_up(option.price_per_request, rate(s.hosting_overhead_pct), rate(s.risk_premium_pct))


def _combine(hosted: Option, api: Option, to_api: Decimal, self_peak: Decimal, tag: str, what: str) -> Option:
    known = [q for q in (hosted.quality, api.quality) if q is not None]
    p95s = [p for p in (hosted.latency_p95_ms, api.latency_p95_ms) if p is not None]
    return Option(
        key=f"hybrid:{tag}:{hosted.key.split(':', 1)[1]}|{api.key.split(':', 1)[1]}",
        kind="hybrid",
        label=f"{hosted.label} + {what} {float(to_api):.0%} on {api.label}",
        model=hosted.model,
        vendor=f"{hosted.vendor}+{api.vendor}",
        gpu=hosted.gpu,
        gpu_count=hosted.gpu_count,
        gpu_hourly=hosted.gpu_hourly,
        replica=hosted.replica,
        source=hosted.source,
        reference=hosted.reference,
        price_per_request=api.price_per_request,
        price_source=api.price_source,
        quality=min(known) if known else None,
        latency_p95_ms=max(p95s) if p95s else None,
        api_share=to_api,
        self_peak=self_peak,
        parts=(hosted, api),
    )
