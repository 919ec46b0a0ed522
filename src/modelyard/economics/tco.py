"""Total cost of ownership, month by month, in the issue's five buckets minus reuse savings::

    TCO = direct compute + hosting + platform engineering + operations + risk premium − reuse savings

- direct: API spend (volume × price per request × price trend) or GPU-hours × $/GPU-hour × GPU trend;
- hosting: the stack's hosting overhead (% of direct) — storage, network, CPU nodes, observability;
- platform: one-off build/integration (engineer-months, booked in month 0) + running FTEs each month;
- operations: on-call/ops per month + the one-off security/compliance review (month 0);
- risk: the stack's risk premium (% of direct + hosting);
- reuse: what the organisation does not pay because it already has the stack (build and review).

Everything is ``Decimal``. Trends are yearly percentages applied smoothly: month ``m`` is scaled by
``(1 + pct/100) ** (m/12)``; volume grows by the monthly rate ``g`` as ``(1 + g) ** m``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from modelyard.economics.capacity import autoscaled_replica_hours, fixed_replica_hours, utilization
from modelyard.economics.formulas import hosting_on, rate, risk_on
from modelyard.economics.options import Option
from modelyard.economics.org import OptionKind, OrgProfile, StackCosts

BUCKETS = ("direct", "hosting", "platform", "operations", "risk", "reuse")
ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Adjust:
    """Multipliers for sensitivity analysis; the identity by default."""

    gpu_price: Decimal = Decimal(1)
    api_price: Decimal = Decimal(1)
    engineer_cost: Decimal = Decimal(1)
    throughput: Decimal = Decimal(1)
    #: Added to the monthly growth rate (e.g. 0.01 = one more point a month).
    growth: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Month:
    direct: Decimal
    hosting: Decimal
    platform: Decimal
    operations: Decimal
    risk: Decimal
    reuse: Decimal
    requests: Decimal
    replicas: int = 0
    utilization: Decimal | None = None
    #: The part of ``direct`` spent on GPUs (the rest went to an API).
    gpu: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.direct + self.hosting + self.platform + self.operations + self.risk - self.reuse


@dataclass(frozen=True, slots=True)
class Tco:
    option: str
    months: list[Month]
    totals: dict[int, Decimal] = field(default_factory=dict)

    def total(self, months: int) -> Decimal:
        return sum((m.total for m in self.months[:months]), ZERO)

    def bucket(self, name: str, months: int) -> Decimal:
        return sum((getattr(m, name) for m in self.months[:months]), ZERO)


@dataclass(frozen=True, slots=True)
class Demand:
    """The workload inputs the TCO needs, exact."""

    requests_per_month: Decimal
    growth_per_month: Decimal
    peak_to_avg: Decimal
    hour_of_day: list[Decimal]


def stack_costs(org: OrgProfile, kind: OptionKind) -> StackCosts:
    return {
        "api": org.stacks.api,
        "managed_open": org.stacks.managed_open,
        "self_hosted": org.stacks.self_hosted,
    }[kind]


def stack(org: OrgProfile, option: Option) -> StackCosts:
    """The stack of a single-stack option (a hybrid has two: see :attr:`Option.stacks`)."""
    return stack_costs(org, option.stacks[0])


@lru_cache(maxsize=4096)
def trend(pct_per_year: Decimal, month: int) -> Decimal:
    """``(1 + pct/100) ** (month/12)``; exactly 1 for month 0 or a 0% trend."""
    if month == 0 or pct_per_year == 0:
        return Decimal(1)
    return (1 + pct_per_year / HUNDRED) ** (Decimal(month) / 12)


def monthly_engineer(org: OrgProfile, adjust: Adjust) -> Decimal:
    return org.engineering.loaded_cost_per_year * adjust.engineer_cost / 12


@dataclass(frozen=True, slots=True)
class _Rates:
    """Per-stack constants of the monthly formula, computed once per TCO rather than once a month."""

    hosting: Decimal
    risk: Decimal
    build: Decimal
    review: Decimal
    run: Decimal
    ops: Decimal
    existing: bool


def _rates(org: OrgProfile, kind: OptionKind, adjust: Adjust) -> _Rates:
    s = stack_costs(org, kind)
    engineer = monthly_engineer(org, adjust)
    return _Rates(
        hosting=rate(s.hosting_overhead_pct), risk=rate(s.risk_premium_pct),
        build=s.build_engineer_months * engineer, review=s.security_review, run=s.run_fte * engineer,
        ops=s.ops_per_month, existing=s.existing,
    )  # fmt: skip


def month_cost(
    option: Option,
    demand: Demand,
    org: OrgProfile,
    m: int,
    adjust: Adjust = Adjust(),
    volume: Decimal | None = None,
) -> Month:
    """The cost of ``option`` in month ``m`` (0-based) of the horizon (``volume`` when already known)."""
    if volume is None:
        volume = demand.requests_per_month * (1 + demand.growth_per_month + adjust.growth) ** m
    rates = tuple(_rates(org, k, adjust) for k in option.stacks)
    return _month(option, demand, org, m, adjust, volume, rates)


def _gpu_part(
    option: Option, demand: Demand, org: OrgProfile, m: int, adjust: Adjust, volume: Decimal
) -> tuple[Decimal, int, Decimal]:
    """(GPU spend, replicas, utilization) of the self-hosted part of ``option`` in month ``m``."""
    part = option.self_part
    assert part is not None and part.replica is not None and part.gpu_hourly is not None
    replica_rps = part.replica.requests_per_s * adjust.throughput
    cap = org.capacity
    if option.self_peak is not None or cap.pool == "fixed":
        peak = demand.peak_to_avg if option.self_peak is None else option.self_peak
        replicas, hours = fixed_replica_hours(
            volume, peak, replica_rps, cap.peak_headroom, cap.redundancy, cap.hours_per_month
        )
    else:
        replicas, hours = autoscaled_replica_hours(
            volume, demand.hour_of_day, replica_rps, cap.peak_headroom, cap.redundancy, cap.hours_per_month
        )
    gpu_price = part.gpu_hourly * adjust.gpu_price * trend(org.trends.gpu_price_pct_per_year, m)
    served = volume if option.parts is None else volume * (1 - option.to_api)
    return hours * part.gpu_count * gpu_price, replicas, utilization(served, replicas, replica_rps)


def _month(
    option: Option, demand: Demand, org: OrgProfile, m: int, adjust: Adjust, volume: Decimal,
    rates: tuple[_Rates, ...],
) -> Month:  # fmt: skip
    """One month, summing each stack's part: direct spend, then hosting and risk on it, then fixed costs."""
    spends: list[Decimal] = []
    replicas, util, gpu = 0, None, ZERO
    for kind in option.stacks:
        if kind == "self_hosted":
            spend, replicas, util = _gpu_part(option, demand, org, m, adjust, volume)
            gpu = spend
        else:
            part = option.api_part
            assert part is not None and part.price_per_request is not None
            price = part.price_per_request * adjust.api_price * trend(org.trends.api_price_pct_per_year, m)
            spend = volume * price if option.parts is None else volume * option.to_api * price
        spends.append(spend)
    first = m == 0
    direct = hosting = platform = operations = risk = reuse = ZERO
    for spend, r in zip(spends, rates, strict=True):
        host = hosting_on(spend, r.hosting)
        build, review = (r.build, r.review) if first else (ZERO, ZERO)
        direct, hosting, risk = direct + spend, hosting + host, risk + risk_on(spend, host, r.risk)
        platform, operations = platform + build + r.run, operations + r.ops + review
        reuse += build + review if r.existing else ZERO
    return Month(direct, hosting, platform, operations, risk, reuse, volume, replicas, util, gpu)


def tco(option: Option, demand: Demand, org: OrgProfile, adjust: Adjust = Adjust()) -> Tco:
    """Month-by-month TCO over the org's horizon, with totals at 12 months and at the horizon."""
    growth = 1 + demand.growth_per_month + adjust.growth
    volumes = [demand.requests_per_month]
    for _ in range(1, org.horizon_months):  # one multiplication a month instead of a power
        volumes.append(volumes[-1] * growth)
    rates = tuple(_rates(org, k, adjust) for k in option.stacks)
    months = [_month(option, demand, org, m, adjust, v, rates) for m, v in enumerate(volumes)]
    result = Tco(option=option.key, months=months)
    for h in sorted({min(12, org.horizon_months), org.horizon_months}):
        result.totals[h] = result.total(h)
    return result


def shared_fixed(org: OrgProfile, kind: OptionKind, months: int) -> Decimal:
    """The stack-level cost of ``kind`` over ``months``: paid once however many workloads use the stack."""
    s = stack_costs(org, kind)
    engineer = monthly_engineer(org, Adjust())
    one_off = ZERO if s.existing else s.build_engineer_months * engineer + s.security_review
    return one_off + months * (s.run_fte * engineer + s.ops_per_month)
