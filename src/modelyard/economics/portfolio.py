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
Σ_o x[w,o] = 1, x ≤ y (a hybrid needs both its stacks), x ≤ z, n[p,m] ≥ Σ_w need[w,p,m]·x[w,p] + spares·z[p]
and n[p,m] ≥ (1 + spares)·z[p], where ``need`` is the rate the workload's self-hosted part is sized for ×
headroom over one replica's rate (so n is the pooled ceiling). A pool is sized as a fixed pool even when
the org profile says autoscaled (a conservative bound).

Coefficients come from the float64 :class:`.grid.CostGrid`; the solver's answer is then priced exactly in
``Decimal``. Before solving, options that cannot be in any optimal solution are removed (:mod:`.prune`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp  # type: ignore[import-untyped]
from scipy.sparse import coo_array  # type: ignore[import-untyped]

from modelyard.economics.formulas import marked_up, rate
from modelyard.economics.grid import CostGrid, evaluate
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile
from modelyard.economics.prune import Model, prune
from modelyard.economics.tco import Demand, Tco, shared_fixed, stack_costs, tco, trend
from modelyard.errors import ConfigError

KINDS = ("api", "managed_open", "self_hosted")
#: Relative optimality gap HiGHS must prove before stopping: the answer is within 0.0001% of the optimum.
MIP_GAP = 1e-6


@dataclass(frozen=True, slots=True)
class Candidate:
    workload: str
    option: Option
    demand: Demand


@dataclass(frozen=True, slots=True)
class Portfolio:
    assignment: dict[str, str]  # workload → option key
    total: Decimal
    standalone_total: Decimal
    pools: dict[str, list[int]]  # pool → replicas per month
    stacks: list[str]
    status: str
    #: Exact TCO of each workload's chosen option, stand-alone.
    chosen_tcos: dict[str, Tco]
    #: (candidates given, kept after exact pruning): how much the solver was spared.
    size: tuple[int, int] = (0, 0)

    @property
    def reuse_savings(self) -> Decimal:
        # To the cent, and + 0 turns a rounding residue's "-0.00" into "0.00".
        return (self.standalone_total - self.total).quantize(Decimal("0.01")) + 0


def pool_of(option: Option) -> str | None:
    """The GPU pool an option's self-hosted part runs in: one per self-hosted deployment."""
    part = option.self_part
    return None if part is None else part.key


def optimise(
    candidates: list[Candidate], workloads: list[str], org: OrgProfile, grid: CostGrid | None = None
) -> Portfolio:
    """The cheapest feasible assignment; :class:`ConfigError` naming any workload with no feasible option.

    ``grid`` is the :func:`.grid.evaluate` of the feasible candidates, in order, when already computed."""
    stranded = [w for w in workloads if not any(c.workload == w and c.option.feasible for c in candidates)]
    if stranded:
        raise ConfigError(
            "impossible constraints: no feasible option for workload(s) " + ", ".join(stranded)
            + "; relax data_classes, quality_floor or slo in the organisation profile, or add candidates"
        )  # fmt: skip
    feasible = [c for c in candidates if c.option.feasible]
    if grid is None:
        grid = evaluate([(c.option, c.demand) for c in feasible], org)
    model = _model(feasible, workloads, grid, org)
    kept = prune(model)
    return _read(_solve(model, kept, org), int(kept.sum()), feasible, workloads, org)


def _model(cands: list[Candidate], workloads: list[str], grid: CostGrid, org: OrgProfile) -> Model:
    months = org.horizon_months
    pools = sorted({p for c in cands if (p := pool_of(c.option)) is not None})
    unit = np.zeros((len(pools), months))
    for row, key in enumerate(pools):
        part = next(c.option.self_part for c in cands if pool_of(c.option) == key)
        assert part is not None and part.gpu_hourly is not None
        for m in range(months):
            unit[row, m] = float(_replica_month(org, part.gpu_hourly * part.gpu_count, m))
    windex = {w: i for i, w in enumerate(workloads)}
    return Model(
        workload=np.asarray([windex[c.workload] for c in cands], dtype=np.int64),
        pool=np.asarray([pools.index(k) if (k := pool_of(c.option)) else -1 for c in cands], dtype=np.int64),
        stacks=[tuple(KINDS.index(k) for k in c.option.stacks) for c in cands],
        variant=[_variant(c.option) for c in cands],
        rps=np.asarray([_rps(c.option) for c in cands]),
        api_cost=grid.api_cost.sum(axis=1),
        need=grid.need,
        unit=unit,
        fixed=np.asarray([float(shared_fixed(org, k, months)) for k in KINDS]),  # type: ignore[arg-type]
        spares=org.capacity.redundancy,
        pools=pools,
        workloads=workloads,
    )


def _variant(option: Option) -> str:
    """What an option is apart from its GPU pool: options of equal variant differ only in the pool."""
    if option.parts is None:
        return option.kind if option.kind == "self_hosted" else option.key
    return f"hybrid:{option.api_part.key if option.api_part else ''}:{option.to_api}:{option.self_peak}"


def _rps(option: Option) -> float:
    part = option.self_part
    return 0.0 if part is None or part.replica is None else float(part.replica.requests_per_s)


def _replica_month(org: OrgProfile, hourly: Decimal, m: int) -> Decimal:
    """One replica for month ``m``: GPU-hours at the trended price, with hosting and risk markup."""
    s = stack_costs(org, "self_hosted")
    spend = hourly * trend(org.trends.gpu_price_pct_per_year, m) * org.capacity.hours_per_month
    return marked_up(spend, rate(s.hosting_overhead_pct), rate(s.risk_premium_pct))


@dataclass(frozen=True, slots=True)
class _Solution:
    chosen: list[int]  # candidate indexes with x = 1
    stacks: list[str]
    pools: dict[str, list[int]]
    status: str


class _Rows:
    """Sparse constraint rows, appended a block at a time: ``lower ≤ Σ value·var ≤ upper``."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.count = 0

    def add(
        self, row: np.ndarray, col: np.ndarray, val: np.ndarray, lower: float, upper: float, n: int
    ) -> None:
        """``n`` rows; ``row`` numbers them 0..n-1 within the block."""
        self.rows.append(row + self.count)
        self.cols.append(col)
        self.vals.append(val)
        self.lo.append(np.full(n, lower))
        self.hi.append(np.full(n, upper))
        self.count += n

    def constraint(self, nvars: int) -> LinearConstraint:
        cat = np.concatenate
        matrix = coo_array((cat(self.vals), (cat(self.rows), cat(self.cols))), shape=(self.count, nvars))
        return LinearConstraint(matrix.tocsr(), cat(self.lo), cat(self.hi))


def _solve(model: Model, kept: np.ndarray, org: OrgProfile) -> _Solution:
    """Build the sparse MILP over the kept candidates and solve it."""
    idx = np.flatnonzero(kept)
    nx, ny, months = idx.size, len(KINDS), org.horizon_months
    used = sorted({int(model.pool[i]) for i in idx if model.pool[i] >= 0})
    nz = len(used)
    z0, n0 = nx + ny, nx + ny + nz
    nvars = n0 + nz * months
    cost = np.concatenate([model.api_cost[idx], model.fixed, np.zeros(nz), model.unit[used].ravel()])
    rows = _Rows()
    nw = len(model.workloads)
    rows.add(model.workload[idx], np.arange(nx), np.ones(nx), 1, 1, nw)  # each workload on one option
    zpos = {p: k for k, p in enumerate(used)}
    links = [(j, nx + s) for j, i in enumerate(idx) for s in model.stacks[i]]
    links += [(j, z0 + zpos[int(model.pool[i])]) for j, i in enumerate(idx) if model.pool[i] >= 0]
    pair = np.asarray(links, dtype=np.int64).reshape(-1, 2)
    count = len(links)
    rows.add(np.repeat(np.arange(count), 2), pair.ravel(), np.tile([1.0, -1.0], count), -np.inf, 0, count)
    if nz:
        _pool_rows(rows, model, idx, zpos, z0, n0, months)
    upper = np.ones(nvars)
    upper[n0:] = np.inf
    result = milp(
        cost, constraints=rows.constraint(nvars), integrality=np.ones(nvars),
        bounds=Bounds(np.zeros(nvars), upper), options={"time_limit": 60, "mip_rel_gap": MIP_GAP},
    )  # fmt: skip
    if result.x is None:
        raise ConfigError(f"the portfolio solver found no solution: {result.message}")
    x = np.round(result.x)
    return _Solution(
        chosen=[int(i) for j, i in enumerate(idx) if x[j] > 0.5],
        stacks=[kind for k, kind in enumerate(KINDS) if x[nx + k] > 0.5],
        pools={model.pools[p]: [int(v) for v in x[n0 + k * months : n0 + (k + 1) * months]]
               for p, k in zpos.items() if x[z0 + k] > 0.5},
        status=str(result.message),
    )  # fmt: skip


def _pool_rows(
    rows: _Rows, model: Model, idx: np.ndarray, zpos: dict[int, int], z0: int, n0: int, months: int
) -> None:
    """n[p,m] − spares·z[p] − Σ need·x ≥ 0 and n[p,m] − (1 + spares)·z[p] ≥ 0, for every pool and month."""
    nz = len(zpos)
    pm = np.arange(nz * months)
    n_cols = n0 + pm
    z_cols = z0 + np.repeat(np.arange(nz), months)
    spares = float(model.spares)
    members = [(j, zpos[int(model.pool[i])]) for j, i in enumerate(idx) if model.pool[i] >= 0]
    mj = np.asarray([j for j, _ in members], dtype=np.int64)
    mk = np.asarray([k for _, k in members], dtype=np.int64)
    need_rows = (mk[:, None] * months + np.arange(months)[None, :]).ravel()
    rows.add(
        np.concatenate([pm, pm, need_rows]),
        np.concatenate([n_cols, z_cols, np.repeat(mj, months)]),
        np.concatenate([np.ones(nz * months), np.full(nz * months, -spares), -model.need[idx[mj]].ravel()]),
        0, np.inf, nz * months,
    )  # fmt: skip
    rows.add(
        np.concatenate([pm, pm]), np.concatenate([n_cols, z_cols]),
        np.concatenate([np.ones(nz * months), np.full(nz * months, -(1 + spares))]), 0, np.inf, nz * months,
    )  # fmt: skip


def _read(
    sol: _Solution, kept: int, cands: list[Candidate], workloads: list[str], org: OrgProfile
) -> Portfolio:
    """Price the solver's answer exactly: chosen options' API side, adopted stacks, pool replica-months."""
    months = org.horizon_months
    chosen = {cands[i].workload: cands[i] for i in sol.chosen}
    tcos = {w: tco(c.option, c.demand, org) for w, c in chosen.items()}
    total = sum((_api_side(t, c.option, org) for t, c in ((tcos[w], chosen[w]) for w in chosen)), Decimal(0))
    total += sum((shared_fixed(org, k, months) for k in sol.stacks), Decimal(0))  # type: ignore[arg-type]
    for key, replicas in sol.pools.items():
        part = next(c.option.self_part for c in cands if pool_of(c.option) == key)
        assert part is not None and part.gpu_hourly is not None
        hourly = part.gpu_hourly * part.gpu_count
        total += sum((_replica_month(org, hourly, m) * n for m, n in enumerate(replicas)), Decimal(0))
    return Portfolio(
        assignment={w: chosen[w].option.key for w in workloads},
        total=total,
        standalone_total=sum((t.total(months) for t in tcos.values()), Decimal(0)),
        pools=sol.pools, stacks=sol.stacks, status=sol.status, chosen_tcos=tcos,
        size=(len(cands), kept),
    )  # fmt: skip


def _api_side(t: Tco, option: Option, org: OrgProfile) -> Decimal:
    """The per-workload (API) part of a TCO: API spend with its stack's hosting and risk, in Decimal."""
    part = option.api_part
    if part is None:
        return Decimal(0)
    s = stack_costs(org, part.kind)  # type: ignore[arg-type]
    h, r = rate(s.hosting_overhead_pct), rate(s.risk_premium_pct)
    return sum((marked_up(m.direct - m.gpu, h, r) for m in t.months), Decimal(0))
