"""Bulk TCO: every (workload, option) pair, month by month, as numpy arrays (float64).

The same formulas as :mod:`.tco`, vectorised over pairs and months. Used where many costs are compared —
ranking options, the portfolio solver, sensitivity — where float64's 1e-16 relative error cannot change an
answer that matters. Figures the report shows are recomputed exactly in ``Decimal`` by :func:`.tco.tco`.

``evaluate`` returns a :class:`CostGrid`: ``buckets[pair, month, bucket]`` in the order of
:data:`.tco.BUCKETS`, replicas per pair and month, and what the portfolio needs to pool replicas: each
pair's fractional replica need per month and its API-side variable cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from modelyard.economics.capacity import SECONDS_PER_MONTH
from modelyard.economics.formulas import hosting_on, marked_up, rate, risk_on
from modelyard.economics.options import Option
from modelyard.economics.org import OptionKind, OrgProfile
from modelyard.economics.tco import Adjust, Demand, monthly_engineer, stack_costs

Floats = NDArray[np.float64]
#: Float noise must not turn an exact integer replica need (2.0) into one more replica (2.0000000000000004).
_CEIL_SLACK = 1e-9
_SPM = float(SECONDS_PER_MONTH)
IDENTITY = Adjust()


@dataclass(frozen=True, slots=True)
class CostGrid:
    """Monthly costs of ``len(pairs)`` (option, demand) pairs over the horizon."""

    #: (pairs, months, 6): direct, hosting, platform, operations, risk, reuse (:data:`.tco.BUCKETS`).
    buckets: Floats
    #: (pairs, months): replicas billed (0 without a self-hosted part).
    replicas: Floats
    #: (pairs, months): the self-hosted part's fractional replica need at its sizing rate (0 without one).
    need: Floats
    #: (pairs, months): API spend with its hosting and risk markup (0 without an API part).
    api_cost: Floats

    def monthly_total(self) -> Floats:
        """(pairs, months): direct + hosting + platform + operations + risk − reuse."""
        b = self.buckets
        total: Floats = b[..., :5].sum(axis=-1) - b[..., 5]
        return total

    def totals(self, months: int) -> Floats:
        """(pairs,): TCO over the first ``months`` months."""
        total: Floats = self.monthly_total()[:, :months].sum(axis=1)
        return total


def _f(x: Decimal | None) -> float:
    return 0.0 if x is None else float(x)


@dataclass(frozen=True, slots=True)
class _Params:
    """Per-pair inputs of the formulas, as float vectors."""

    volume: Floats
    growth: Floats
    to_api: Floats
    price: Floats
    gpu_cost: Floats  # $/hour of one replica: GPU-hour price × GPUs per replica
    rps: Floats  # one replica's requests/s (1 where there is no self-hosted part, to avoid 0/0)
    sizing_peak: Floats  # the rate the self-hosted part is sized for, × average (fixed pools)
    autoscaled: NDArray[np.bool_]
    shares: Floats  # (pairs, 24) hour-of-day shares, for autoscaled pools


def _params(pairs: Sequence[tuple[Option, Demand]], org: OrgProfile, adjust: Adjust) -> _Params:
    cols: list[list[float]] = [[] for _ in range(7)]
    autoscaled, shares = [], []
    pool_autoscaled = org.capacity.pool == "autoscaled"
    for option, demand in pairs:
        sp, ap = option.self_part, option.api_part
        peak = option.self_peak if option.self_peak is not None else demand.peak_to_avg
        row = (
            _f(demand.requests_per_month), _f(demand.growth_per_month), _f(option.to_api),
            _f(ap.price_per_request) if ap else 0.0,
            _f(sp.gpu_hourly) * sp.gpu_count if sp else 0.0,
            _f(sp.replica.requests_per_s) if sp and sp.replica else 1.0,
            _f(peak) if sp else 0.0,
        )  # fmt: skip
        for col, value in zip(cols, row, strict=True):
            col.append(value)
        autoscaled.append(sp is not None and option.self_peak is None and pool_autoscaled)
        shares.append([float(h) for h in demand.hour_of_day] if autoscaled[-1] else [])
    v = [np.asarray(c, dtype=np.float64) for c in cols]
    auto = np.asarray(autoscaled, dtype=np.bool_)
    share_rows = [s for s in shares if s]
    share_arr = np.asarray(share_rows, dtype=np.float64).reshape(len(share_rows), 24)
    return _Params(v[0], v[1] + float(adjust.growth), v[2], v[3] * float(adjust.api_price),
                   v[4] * float(adjust.gpu_price), v[5] * float(adjust.throughput), v[6], auto, share_arr)  # fmt: skip


def _ceil(x: Floats) -> Floats:
    return np.ceil(x - _CEIL_SLACK)


def _replicas(p: _Params, avg: Floats, org: OrgProfile) -> tuple[Floats, Floats, Floats]:
    """(replicas, replica-hours, need) per pair and month; zeros for pairs without a self-hosted part."""
    cap = org.capacity
    headroom, spares, hours = float(cap.peak_headroom), float(cap.redundancy), float(cap.hours_per_month)
    has_self = (p.gpu_cost > 0)[:, None]
    need = avg * p.sizing_peak[:, None] * headroom / p.rps[:, None]
    replicas = np.where(has_self, np.maximum(_ceil(need), 1.0) + spares, 0.0)
    billed = replicas * hours
    if p.autoscaled.any():
        rows = np.flatnonzero(p.autoscaled)
        rate = avg[rows, :, None] * 24.0 * p.shares[:, None, :]  # (rows, months, 24 hours)
        counts = np.maximum(_ceil(rate * headroom / p.rps[rows, None, None]), 1.0) + spares
        replicas[rows] = counts.max(axis=2)
        billed[rows] = counts.sum(axis=2) * hours / 24.0
    return replicas, billed, np.where(has_self, need, 0.0)


def _stack_rates(org: OrgProfile, adjust: Adjust) -> dict[OptionKind, tuple[float, ...]]:
    """kind → (hosting, risk, build, review, run, ops, existing) as floats."""
    engineer = monthly_engineer(org, adjust)
    out: dict[OptionKind, tuple[float, ...]] = {}
    kinds: tuple[OptionKind, ...] = ("api", "managed_open", "self_hosted")
    for kind in kinds:
        s = stack_costs(org, kind)
        out[kind] = (rate(float(s.hosting_overhead_pct)), rate(float(s.risk_premium_pct)),
                     float(s.build_engineer_months * engineer), float(s.security_review),
                     float(s.run_fte * engineer), float(s.ops_per_month), float(s.existing))  # fmt: skip
    return out


def evaluate(pairs: Sequence[tuple[Option, Demand]], org: OrgProfile, adjust: Adjust = IDENTITY) -> CostGrid:
    """Monthly TCO by bucket of every (option, demand) pair; options must be feasible."""
    return _evaluate(pairs, _params(pairs, org, adjust), org, adjust)


def totals_at_volumes(pairs: Sequence[tuple[Option, Demand]], volumes: Floats, org: OrgProfile) -> Floats:
    """(pairs, k): horizon TCO of each pair with its demand's volume today replaced by each of its row of
    ``volumes`` (pairs, k) — growth, hour shape and everything else as in the pair. One batch, no copies
    of the options: the break-even scans call this."""
    k = volumes.shape[1]
    p = _params(pairs, org, IDENTITY)
    fields = {f: np.repeat(getattr(p, f), k, axis=0) for f in _Params.__dataclass_fields__}
    fields["volume"] = volumes.reshape(-1)
    repeated = [pair for pair in pairs for _ in range(k)]
    grid = _evaluate(repeated, _Params(**fields), org, IDENTITY)
    return grid.totals(org.horizon_months).reshape(len(pairs), k)


def _evaluate(
    pairs: Sequence[tuple[Option, Demand]], p: _Params, org: OrgProfile, adjust: Adjust
) -> CostGrid:
    months = org.horizon_months
    m = np.arange(months, dtype=np.float64)
    volume = p.volume[:, None] * (1.0 + p.growth[:, None]) ** m
    gpu_trend = (1 + float(org.trends.gpu_price_pct_per_year) / 100) ** (m / 12)
    api_trend = (1 + float(org.trends.api_price_pct_per_year) / 100) ** (m / 12)
    replicas, billed, need = _replicas(p, volume / _SPM, org)
    gpu = billed * p.gpu_cost[:, None] * gpu_trend
    api = volume * (p.to_api * p.price)[:, None] * api_trend
    rates = _stack_rates(org, adjust)
    buckets = np.zeros((len(pairs), months, 6))
    api_cost = np.zeros((len(pairs), months))
    kinds = np.asarray([_api_kind(o) for o, _ in pairs])
    for kind, (host, risk, build, review, run, ops, existing) in rates.items():
        if kind == "self_hosted":
            uses, spend = np.asarray([o.self_part is not None for o, _ in pairs], dtype=np.bool_), gpu
        else:
            uses, spend = kinds == kind, api
        if not uses.any():
            continue
        sel = uses[:, None]
        spend = np.where(sel, spend, 0.0)
        h, r = np.full_like(spend, host), np.full_like(spend, risk)
        hosting = hosting_on(spend, h)
        buckets[..., 0] += spend
        buckets[..., 1] += hosting
        buckets[..., 4] += risk_on(spend, hosting, r)
        if kind != "self_hosted":
            api_cost += marked_up(spend, h, r)
        fixed = np.full(months, run)
        fixed[0] += build
        buckets[..., 2] += np.where(sel, fixed, 0.0)
        ops_row = np.full(months, ops)
        ops_row[0] += review
        buckets[..., 3] += np.where(sel, ops_row, 0.0)
        if existing:
            buckets[:, 0, 5] += np.where(uses, build + review, 0.0)
    return CostGrid(buckets=buckets, replicas=replicas, need=need, api_cost=api_cost)


def _api_kind(option: Option) -> str:
    part = option.api_part
    return "" if part is None else part.kind
