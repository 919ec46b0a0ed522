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
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np

from modelyard.economics.capacity import SECONDS_PER_MONTH
from modelyard.economics.formulas import marked_up, rate
from modelyard.economics.grid import evaluate, totals_at_volumes
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


def _fixed(option: Option, org: OrgProfile) -> Fraction:
    """A stack's monthly fixed cost: one-offs spread over the horizon, plus run FTEs and operations."""
    st = stack(org, option)
    engineer = _dec(org.engineering.loaded_cost_per_year) / 12
    one_off = (
        Fraction(0) if st.existing else _dec(st.build_engineer_months) * engineer + _dec(st.security_review)
    )
    return one_off / org.horizon_months + _dec(st.run_fte) * engineer + _dec(st.ops_per_month)


def _markup(option: Option, org: OrgProfile) -> Fraction:
    st = stack(org, option)
    return marked_up(Fraction(1), rate(_dec(st.hosting_overhead_pct)), rate(_dec(st.risk_premium_pct)))


def api_curve(api: Option, org: OrgProfile) -> ApiCurve:
    """The API option's run-rate curve at month-0 prices."""
    assert api.price_per_request is not None
    return ApiCurve(fixed=_fixed(api, org), per_request=_dec(api.price_per_request) * _markup(api, org))


def step_curve(self_: Option, demand: Demand, org: OrgProfile) -> StepCurve:
    """The self-hosted option's run-rate curve at month-0 prices, sized for ``demand``'s peak."""
    assert self_.replica is not None and self_.gpu_hourly is not None
    cap = org.capacity
    replica_month = _dec(self_.gpu_hourly) * self_.gpu_count * _dec(cap.hours_per_month) * _markup(self_, org)
    k = (
        _dec(demand.peak_to_avg)
        * _dec(cap.peak_headroom)
        / (_dec(SECONDS_PER_MONTH) * _dec(self_.replica.requests_per_s))
    )
    return StepCurve(
        fixed=_fixed(self_, org), per_replica=replica_month, replicas_per_volume=k, spares=cap.redundancy
    )


def curves(api: Option, self_: Option, demand: Demand, org: OrgProfile) -> tuple[ApiCurve, StepCurve]:
    """Run-rate curves of two options at month-0 prices, one-off costs amortised over the horizon."""
    return api_curve(api, org), step_curve(self_, demand, org)


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


def lowest_break_evens(
    priced: list[Option], hosted: list[Option], demand: Demand, org: OrgProfile, cap: Fraction
) -> dict[str, PairBreakEven]:
    """For each option of ``priced``: its break-even against every option in ``hosted`` (cheapest first);
    the lowest wins — lowest sustained break-even first, then lowest first crossing; with none below
    ``cap``, the first option of ``hosted`` is named and both volumes are ``None``."""
    steps = {o.key: step_curve(o, demand, org) for o in hosted}
    never = cap + 1

    def capped(be: BreakEven) -> BreakEven:
        return BreakEven(
            first=be.first if be.first is not None and be.first <= cap else None,
            sustained=be.sustained if be.sustained is not None and be.sustained <= cap else None,
        )

    def rank(be: BreakEven) -> tuple[Fraction, Fraction]:
        return (
            be.sustained if be.sustained is not None else never,
            be.first if be.first is not None else never,
        )

    out = {}
    for api in priced:
        curve = api_curve(api, org)
        per_option = {key: capped(solve(curve, step)) for key, step in steps.items()}
        best = min(per_option, key=lambda key: rank(per_option[key]))  # ties: the cheaper option
        out[api.key] = PairBreakEven(
            api=api.key,
            self_hosted=best,
            first=per_option[best].first,
            sustained=per_option[best].sustained,
            cap=cap,
            per_option=per_option,
        )
    return out


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


#: Volumes tried per pass of :func:`horizon_break_evens`: a log grid up to the cap, then the bracket found,
#: again and again until every bracket is narrower than :data:`_SCAN_PRECISION` (relative).
_SCAN_POINTS = 17
_SCAN_PRECISION = 1.005


def horizon_break_evens(
    pairs: list[tuple[Option, Option, Demand, Fraction]], org: OrgProfile
) -> list[Decimal | None]:
    """Break-even on the horizon basis, for each (API, self-hosted, demand, cap).

    The lowest volume today from which self-hosting's horizon TCO — with growth, price trends and one-offs
    in month 0, exactly as the 12/36-month totals are computed — stays no dearer than the API's, at every
    volume tried above it. Found numerically: a log grid of volumes from 1 request/month up to the cap,
    then the bracket around the crossing scanned again until it is narrower than 0.5%, so the figure is
    within 0.5% above the crossing; at the figure returned, self-hosting is verifiably no dearer.
    ``None``: not below the cap."""
    if not pairs:
        return []
    rows = [(option, demand) for api, self_, demand, _ in pairs for option in (api, self_)]
    lo = np.ones(len(pairs))
    hi = np.array([float(cap) for *_, cap in pairs])
    found: list[Decimal | None] = [None] * len(pairs)
    while np.any(hi > lo * _SCAN_PRECISION):
        volumes = np.geomspace(lo, hi, _SCAN_POINTS, axis=1)  # (pairs, points)
        totals = totals_at_volumes(rows, np.repeat(volumes, 2, axis=0), org)
        cheaper = totals[1::2] <= totals[0::2]
        for i in range(len(pairs)):
            # From the last point where the API was cheaper, every point up to the cap favours self-hosting.
            dearer = np.flatnonzero(~cheaper[i])
            if dearer.size == 0:
                found[i] = Decimal(f"{volumes[i, 0]:.6g}")
                hi[i] = lo[i]
            elif dearer[-1] == _SCAN_POINTS - 1:
                found[i] = None
                lo[i] = hi[i]
            else:
                j = int(dearer[-1])
                found[i] = Decimal(f"{volumes[i, j + 1]:.6g}")
                lo[i], hi[i] = volumes[i, j], volumes[i, j + 1]
    return found
