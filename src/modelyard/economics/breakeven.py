"""Break-even volume between an API-priced option and a self-hosted option, solved exactly, and sensitivity.

Both are monthly run-rate curves in the volume ``V`` (requests/month) at today's prices, one-off costs spread
over the horizon:

- API:  ``A(V) = Fa + c·V``  (c = price per request × (1 + hosting%) × (1 + risk%));
- self: ``B(V) = Fb + u·(max(⌈k·V⌉, 1) + r)``  (u = one replica's monthly cost, k = replicas per request/month
  at the peak, r = spare replicas).

``B`` is a step function, so ``D = A − B`` is linear inside each step ``j`` (``V ∈ ((j−1)/k, j/k]``) and
drops by ``u`` at each step. Solving ``D = 0`` step by step in closed form gives the first volume where
self-hosting is cheaper and the volume from which it stays cheaper. Arithmetic is in ``Fraction``: at the
returned volume the two curves are exactly equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

import numpy as np

from modelyard.economics.capacity import SECONDS_PER_MONTH
from modelyard.economics.grid import evaluate
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile
from modelyard.economics.tco import Adjust, Demand, stack


@dataclass(frozen=True, slots=True)
class ApiCurve:
    fixed: Fraction
    per_request: Fraction

    def cost(self, v: Fraction) -> Fraction:
        return self.fixed + self.per_request * v


@dataclass(frozen=True, slots=True)
class StepCurve:
    fixed: Fraction
    per_replica: Fraction
    replicas_per_volume: Fraction  # k
    spares: int

    def replicas(self, v: Fraction) -> int:
        return max(math.ceil(self.replicas_per_volume * v), 1) + self.spares

    def cost(self, v: Fraction) -> Fraction:
        return self.fixed + self.per_replica * self.replicas(v)


@dataclass(frozen=True, slots=True)
class BreakEven:
    #: Lowest volume (requests/month) at which self-hosting costs no more than the API; ``None``: never.
    first: Fraction | None
    #: Volume from which self-hosting stays no dearer at every higher volume; ``None``: it never does.
    sustained: Fraction | None


def _ceil(x: Fraction) -> int:
    return math.ceil(x)


def solve(api: ApiCurve, self_: StepCurve) -> BreakEven:
    """Exact break-even of ``api`` against ``self_`` (see the module docstring for the algebra)."""
    s, u, k = api.per_request, self_.per_replica, self_.replicas_per_volume
    if s <= 0:
        raise ValueError("the API curve needs a positive price per request")
    e0 = api.fixed - self_.fixed - u * self_.spares

    def crossing(j: int) -> Fraction:  # where D = 0 inside step j, clamped to V ≥ 0
        return max((u * j - e0) / s, Fraction(0))

    beta = u - s / k  # < 0: a replica costs less than the API traffic it can carry
    if beta < 0:
        j1 = max(1, _ceil(e0 / beta))
        j2 = max(1, _ceil((e0 - s / k) / beta))  # from step j2 on, every whole step is cheaper
        first = crossing(j1)
        sustained = first if j2 <= j1 else crossing(j2 - 1)
        return BreakEven(first=first, sustained=sustained)
    if e0 - beta >= 0:  # step 1 has a crossing, but larger volumes favour the API again
        return BreakEven(first=crossing(1), sustained=None)
    return BreakEven(first=None, sustained=None)


def _dec(x: Decimal) -> Fraction:
    return Fraction(x)


def curves(api: Option, self_: Option, demand: Demand, org: OrgProfile) -> tuple[ApiCurve, StepCurve]:
    """Run-rate curves of two options at month-0 prices, one-off costs amortised over the horizon."""
    assert api.price_per_request is not None and self_.replica is not None and self_.gpu_hourly is not None
    engineer = _dec(org.engineering.loaded_cost_per_year) / 12
    horizon = org.horizon_months

    def fixed(option: Option) -> Fraction:
        st = stack(org, option)
        one_off = (
            Fraction(0)
            if st.existing
            else _dec(st.build_engineer_months) * engineer + _dec(st.security_review)
        )
        return one_off / horizon + _dec(st.run_fte) * engineer + _dec(st.ops_per_month)

    def markup(option: Option) -> Fraction:
        st = stack(org, option)
        return (1 + _dec(st.hosting_overhead_pct) / 100) * (1 + _dec(st.risk_premium_pct) / 100)

    cap = org.capacity
    replica_month = _dec(self_.gpu_hourly) * self_.gpu_count * _dec(cap.hours_per_month) * markup(self_)
    k = (
        _dec(demand.peak_to_avg)
        * _dec(cap.peak_headroom)
        / (_dec(SECONDS_PER_MONTH) * _dec(self_.replica.requests_per_s))
    )
    return (
        ApiCurve(fixed=fixed(api), per_request=_dec(api.price_per_request) * markup(api)),
        StepCurve(
            fixed=fixed(self_), per_replica=replica_month, replicas_per_volume=k, spares=cap.redundancy
        ),
    )


def break_even(api: Option, self_: Option, demand: Demand, org: OrgProfile) -> BreakEven:
    return solve(*curves(api, self_, demand, org))


#: "Never" is stated against a cap: no self-hosted option breaks even below this multiple of today's volume
#: (and not below :data:`MIN_CAP` requests/month).
CAP_MULTIPLE = 1000
MIN_CAP = Fraction(10**6)


def volume_cap(requests_per_month: Decimal) -> Fraction:
    return max(_dec(requests_per_month) * CAP_MULTIPLE, MIN_CAP)


@dataclass(frozen=True, slots=True)
class PairBreakEven:
    """The break-even of one API-priced option against the self-hosted option that breaks even lowest.

    Run-rate basis: month-0 prices, one-offs amortised over the horizon (:func:`curves`). A volume above
    ``cap`` is reported as ``None`` (never, below the cap)."""

    api: str
    #: The self-hosted option giving the lowest break-even (the cheapest today when none breaks even).
    self_hosted: str
    first: Fraction | None
    sustained: Fraction | None
    cap: Fraction
    #: Every feasible self-hosted option's break-even against ``api``, capped the same way.
    per_option: dict[str, BreakEven]


def lowest_break_even(
    api: Option, hosted: list[Option], demand: Demand, org: OrgProfile, cap: Fraction
) -> PairBreakEven:
    """Break-even of ``api`` against every option in ``hosted`` (cheapest first); the lowest wins.

    Lowest sustained break-even first, then lowest first crossing; with none below ``cap``, the first
    option of ``hosted`` is named and both volumes are ``None``."""

    def capped(be: BreakEven) -> BreakEven:
        return BreakEven(
            first=be.first if be.first is not None and be.first <= cap else None,
            sustained=be.sustained if be.sustained is not None and be.sustained <= cap else None,
        )

    per_option = {o.key: capped(break_even(api, o, demand, org)) for o in hosted}

    def rank(key: str) -> tuple[Fraction, Fraction]:
        be = per_option[key]
        never = cap + 1
        return (
            be.sustained if be.sustained is not None else never,
            be.first if be.first is not None else never,
        )

    best = min(per_option, key=rank)  # min keeps the earliest (cheapest) option on ties
    return PairBreakEven(
        api=api.key,
        self_hosted=best,
        first=per_option[best].first,
        sustained=per_option[best].sustained,
        cap=cap,
        per_option=per_option,
    )


@dataclass(frozen=True, slots=True)
class TornadoBar:
    parameter: str
    low_label: str
    high_label: str
    #: Horizon TCO of self-hosting minus the API option at the low and high value (negative: self-host wins).
    low: Decimal
    high: Decimal

    @property
    def swing(self) -> Decimal:
        return abs(self.high - self.low)


#: (name, low, high) for each input the tornado moves.
SENSITIVITY: list[tuple[str, Adjust, Adjust, str, str]] = [
    ("GPU price", Adjust(gpu_price=Decimal("0.7")), Adjust(gpu_price=Decimal("1.3")), "-30%", "+30%"),
    ("API price", Adjust(api_price=Decimal("0.7")), Adjust(api_price=Decimal("1.3")), "-30%", "+30%"),
    (
        "Utilization (throughput/GPU)",
        Adjust(throughput=Decimal("0.7")),
        Adjust(throughput=Decimal("1.3")),
        "-30%",
        "+30%",
    ),
    (
        "Engineer cost",
        Adjust(engineer_cost=Decimal("0.7")),
        Adjust(engineer_cost=Decimal("1.3")),
        "-30%",
        "+30%",
    ),
    (
        "Volume growth",
        Adjust(growth=Decimal("-0.03")),
        Adjust(growth=Decimal("0.03")),
        "-3 pt/mo",
        "+3 pt/mo",
    ),
]


def tornado_bars(rows: list[tuple[Option, Demand]], org: OrgProfile) -> list[list[TornadoBar]]:
    """For pairs of rows ``(self-hosted, API)`` of one workload each: one bar per input, largest swing first.

    Every workload's pair is costed in one vectorised batch per input value (:mod:`.grid`); a bar is the
    horizon TCO of self-hosting minus the API option, to the cent."""
    h = org.horizon_months
    per_input = []
    for name, lo, hi, lo_l, hi_l in SENSITIVITY:
        low, high = (evaluate(rows, org, adjust).totals(h) for adjust in (lo, hi))
        per_input.append((name, lo_l, hi_l, low[0::2] - low[1::2], high[0::2] - high[1::2]))
    out = []
    for i in range(len(rows) // 2):
        bars = [
            TornadoBar(name, lo_l, hi_l, _cents(low[i]), _cents(high[i]))
            for name, lo_l, hi_l, low, high in per_input
        ]
        out.append(sorted(bars, key=lambda b: b.swing, reverse=True))
    return out


def _cents(x: float) -> Decimal:
    return Decimal(f"{x:.2f}")


#: Volumes tried per pass of :func:`horizon_break_evens`: a coarse log grid up to the cap, then the bracket.
_SCAN_POINTS = 49


def horizon_break_evens(
    pairs: list[tuple[Option, Option, Demand, Fraction]], org: OrgProfile
) -> list[Decimal | None]:
    """Break-even on the horizon basis, for each (API, self-hosted, demand, cap).

    The lowest volume today from which self-hosting's horizon TCO — with growth, price trends and one-offs
    in month 0, exactly as the 12/36-month totals are computed — stays no dearer than the API's, at every
    volume tried above it. Found numerically: a log grid of volumes up to the cap, then the bracket
    around the crossing scanned again, so the figure is within ~1% above the exact crossing; at the
    figure returned, self-hosting is verifiably no dearer. ``None``: not below the cap."""
    bounds = [(Fraction(1), cap) for _, _, _, cap in pairs]
    found: list[Decimal | None] = [None] * len(pairs)
    for _ in range(2):
        grids = [np.geomspace(float(lo), float(hi), _SCAN_POINTS) for lo, hi in bounds]
        rows = [
            (option, replace(demand, requests_per_month=Decimal(f"{v:.6g}")))
            for (api, self_, demand, _), volumes in zip(pairs, grids, strict=True)
            for v in volumes
            for option in (api, self_)
        ]
        totals = evaluate(rows, org).totals(org.horizon_months).reshape(len(pairs), _SCAN_POINTS, 2)
        cheaper = totals[..., 1] <= totals[..., 0]
        for i, volumes in enumerate(grids):
            # From the last point where the API was cheaper, every point up to the cap favours self-hosting.
            dearer = np.flatnonzero(~cheaper[i])
            if dearer.size == 0:
                found[i] = Decimal(f"{volumes[0]:.6g}")
                bounds[i] = (bounds[i][0], bounds[i][0])
            elif dearer[-1] == _SCAN_POINTS - 1:
                found[i] = None
                bounds[i] = (bounds[i][1], bounds[i][1])
            else:
                j = int(dearer[-1])
                found[i] = Decimal(f"{volumes[j + 1]:.6g}")
                bounds[i] = (Fraction(volumes[j]), Fraction(volumes[j + 1]))
    return found
