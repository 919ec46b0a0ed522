"""Portfolio: assign every workload to one option, minimising horizon TCO, as a mixed-integer program.

Solved with HiGHS through SciPy's ``milp`` (an exact branch-and-bound solver: the answer is optimal, not a
greedy guess). Workloads on the same self-hosted deployment share one GPU pool sized month by month for
their summed peaks, and every stack's fixed cost (platform build and team, on-call, reviews) is paid once —
the reuse lever. Variables:

- ``x[w,o]`` ∈ {0,1}: workload ``w`` runs on option ``o`` (only feasible pairs exist: constraints such as
  data class, quality floor and latency objective were applied when the options were built);
- ``y[s]`` ∈ {0,1}: stack ``s`` (api, managed_open, self_hosted) is adopted;
- ``z[p]`` ∈ {0,1}: self-hosted pool ``p`` exists; ``n[p,m]`` ∈ ℕ: its replicas in month ``m``.

Minimise Σ x·(API-side cost) + Σ n·(replica-month cost) + Σ y·(stack fixed cost), subject to
Σ_o x[w,o] = 1, x ≤ y, x ≤ z, n[p,m] ≥ Σ_w need[w,p,m]·x[w,p] + spares·z[p] and n[p,m] ≥ (1 + spares)·z[p],
where ``need`` is the workload's peak rate × headroom over one replica's rate (so n is the pooled ceiling).
The pool is sized as a fixed pool even when the org profile says autoscaled (a conservative bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp  # type: ignore[import-untyped]
from scipy.sparse import coo_array  # type: ignore[import-untyped]

from modelyard.economics.capacity import peak_rps
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile
from modelyard.economics.tco import Demand, Tco, shared_fixed, stack, trend
from modelyard.errors import ConfigError

_KINDS = ("api", "managed_open", "self_hosted")
#: Relative optimality gap HiGHS must prove before stopping: the answer is within 0.0001% of the optimum.
MIP_GAP = 1e-6


@dataclass(frozen=True, slots=True)
class Candidate:
    workload: str
    option: Option
    demand: Demand
    tco: Tco


@dataclass(frozen=True, slots=True)
class Portfolio:
    assignment: dict[str, str]  # workload → option key
    total: Decimal
    standalone_total: Decimal
    pools: dict[str, list[int]]  # pool → replicas per month
    stacks: list[str]
    status: str

    @property
    def reuse_savings(self) -> Decimal:
        return self.standalone_total - self.total


def _variable_cost(c: Candidate, months: int) -> float:
    """The per-workload part of the horizon TCO (API spend with hosting and risk); 0 for self-hosted."""
    if c.option.kind == "self_hosted":
        return 0.0
    return float(sum((m.direct + m.hosting + m.risk for m in c.tco.months[:months]), Decimal(0)))


def _prune(cands: list[Candidate], months: int) -> list[Candidate]:
    """Drop API-priced options another option of the same stack beats for the same workload.

    Exact: such options share the stack variable and have only a per-workload cost, so the cheapest one
    dominates the rest in every solution. Self-hosted options are kept (their cost depends on the pool)."""
    best: dict[tuple[str, str], Candidate] = {}
    kept = []
    for c in cands:
        if c.option.kind == "self_hosted":
            kept.append(c)
            continue
        key = (c.workload, c.option.kind)
        if key not in best or _variable_cost(c, months) < _variable_cost(best[key], months):
            best[key] = c
    return kept + list(best.values())


def optimise(candidates: list[Candidate], workloads: list[str], org: OrgProfile) -> Portfolio:
    """The cheapest feasible assignment; :class:`ConfigError` naming any workload with no feasible option."""
    months = org.horizon_months
    stranded = [w for w in workloads if not any(c.workload == w and c.option.feasible for c in candidates)]
    if stranded:
        raise ConfigError(
            "impossible constraints: no feasible option for workload(s) " + ", ".join(stranded)
            + "; relax data_classes, quality_floor or slo in the organisation profile, or add candidates"
        )  # fmt: skip
    cands = _prune([c for c in candidates if c.option.feasible], months)
    pools = sorted({c.option.key for c in cands if c.option.kind == "self_hosted"})
    nx, ny, nz = len(cands), len(_KINDS), len(pools)
    n_index = nx + ny + nz
    nvars = n_index + nz * months
    cost = np.zeros(nvars)
    for i, c in enumerate(cands):
        cost[i] = _variable_cost(c, months)
    kinds_used = {c.option.kind for c in cands}
    by_kind = {c.option.kind: c.option for c in cands}
    for k, kind in enumerate(_KINDS):
        cost[nx + k] = float(shared_fixed(org, by_kind[kind], months)) if kind in kinds_used else 0.0
    cap = org.capacity
    pool_option = {c.option.key: c.option for c in cands if c.option.kind == "self_hosted"}
    for p, key in enumerate(pools):
        opt = pool_option[key]
        assert opt.gpu_hourly is not None
        st = stack(org, opt)
        markup = (1 + st.hosting_overhead_pct / 100) * (1 + st.risk_premium_pct / 100)
        for m in range(months):
            gpu = opt.gpu_hourly * trend(org.trends.gpu_price_pct_per_year, m)
            cost[n_index + p * months + m] = float(gpu * opt.gpu_count * cap.hours_per_month * markup)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def add(entries: list[tuple[int, float]], lower: float, upper: float) -> None:
        r = len(lo)
        for col, v in entries:
            rows.append(r)
            cols.append(col)
            vals.append(v)
        lo.append(lower)
        hi.append(upper)

    for w in workloads:
        add([(i, 1.0) for i, c in enumerate(cands) if c.workload == w], 1, 1)
    for i, c in enumerate(cands):
        add([(i, 1.0), (nx + _KINDS.index(c.option.kind), -1.0)], -np.inf, 0)
        if c.option.kind == "self_hosted":
            add([(i, 1.0), (nx + ny + pools.index(c.option.key), -1.0)], -np.inf, 0)
    for p, key in enumerate(pools):
        members = [(i, c) for i, c in enumerate(cands) if c.option.key == key]
        for m in range(months):
            n_col, z_col = n_index + p * months + m, nx + ny + p
            entries = [(n_col, 1.0), (z_col, -float(cap.redundancy))]
            for i, c in members:
                assert c.option.replica is not None
                volume = c.demand.requests_per_month * (1 + c.demand.growth_per_month) ** m
                need = (
                    peak_rps(volume, c.demand.peak_to_avg)
                    * cap.peak_headroom
                    / c.option.replica.requests_per_s
                )
                entries.append((i, -float(need)))
            add(entries, 0.0, np.inf)  # n ≥ Σ need·x + spares·z (n is an integer: the ceiling)
            add(
                [(n_col, 1.0), (z_col, -float(1 + cap.redundancy))], 0.0, np.inf
            )  # one serving replica at least
    matrix = coo_array((vals, (rows, cols)), shape=(len(lo), nvars)).tocsr()
    integrality = np.ones(nvars)
    upper = np.ones(nvars)
    upper[n_index:] = np.inf
    result = milp(
        cost, constraints=LinearConstraint(matrix, lo, hi), integrality=integrality,
        bounds=Bounds(np.zeros(nvars), upper), options={"time_limit": 60, "mip_rel_gap": MIP_GAP},
    )  # fmt: skip
    if result.x is None:
        raise ConfigError(f"the portfolio solver found no solution: {result.message}")
    return _read(result.x, cands, pools, workloads, org, nx, ny, n_index, cost, str(result.message))


def _read(
    x: np.ndarray, cands: list[Candidate], pools: list[str], workloads: list[str], org: OrgProfile,
    nx: int, ny: int, n_index: int, cost: np.ndarray, status: str,
) -> Portfolio:  # fmt: skip
    months = org.horizon_months
    chosen = [c for i, c in enumerate(cands) if x[i] > 0.5]
    assignment = {c.workload: c.option.key for c in chosen}
    stacks = [kind for k, kind in enumerate(_KINDS) if x[nx + k] > 0.5]
    pool_replicas = {
        key: [round(x[n_index + p * months + m]) for m in range(months)]
        for p, key in enumerate(pools)
        if x[nx + ny + p] > 0.5
    }
    total = Decimal(str(round(float(cost @ np.round(x)), 2)))
    standalone = sum((c.tco.total(months) for c in chosen), Decimal(0))
    return Portfolio(
        assignment={w: assignment[w] for w in workloads}, total=total, standalone_total=standalone,
        pools=pool_replicas, stacks=stacks, status=status,
    )  # fmt: skip
