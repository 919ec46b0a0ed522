"""Bulk costing, hybrids and the portfolio: float grid = exact Decimal, hybrid buckets by hand, and the MILP
(with its exact pruning) equal to an exhaustive search over every assignment."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal

import pytest

from modelyard.economics.capacity import ReplicaCapacity
from modelyard.economics.grid import evaluate
from modelyard.economics.hybrid import hybrid_options, overflow_share
from modelyard.economics.options import Option
from modelyard.economics.portfolio import Candidate, optimise
from modelyard.economics.tco import Adjust, Demand, month_cost, shared_fixed, tco
from tests.test_economics_core import API, FLAT, LEVEL, SELF, org

D = Decimal
# Twelve hours at 1/16 of the day's requests and twelve at 1/48: the day is 3× busier by day than by night.
DAY_NIGHT = [D(1) / 16] * 12 + [D(1) / 48] * 12
SHAPED = Demand(D(2_000_000), D("0.03"), D(3), DAY_NIGHT)


@pytest.mark.parametrize("pool", ["fixed", "autoscaled"])
@pytest.mark.parametrize(
    "adjust",
    [Adjust(), Adjust(gpu_price=D("1.3"), api_price=D("0.7"), throughput=D("0.7"), growth=D("0.01"))],
)
def test_float_grid_matches_exact_tco(pool: str, adjust: Adjust) -> None:
    o = org(horizon_months=36, capacity={"pool": pool, "peak_headroom": "1.5"},
            trends={"api_price_pct_per_year": -30, "gpu_price_pct_per_year": -15})  # fmt: skip
    hybrids = hybrid_options([API, SELF], SHAPED, "w", o)
    pairs = [(x, d) for x in (API, SELF, *hybrids) for d in (FLAT, SHAPED)]
    grid = evaluate(pairs, o, adjust)
    for row, (option, demand) in enumerate(pairs):
        exact = tco(option, demand, o, adjust)
        assert grid.totals(36)[row] == pytest.approx(float(exact.total(36)), rel=1e-12)
        assert list(grid.replicas[row]) == [m.replicas for m in exact.months]


def test_overflow_share_by_hand() -> None:
    # Mean hour = 1/24; the twelve day hours are 1/16 − 1/24 = 1/48 above it: 12/48 = a quarter of the day.
    assert overflow_share(DAY_NIGHT) == pytest.approx(D("0.25"), abs=D("1e-25"))
    assert overflow_share([D(1) / 24] * 24) == 0


def test_hybrid_month_buckets_by_hand() -> None:
    o = org()
    (hybrid,) = hybrid_options([API, SELF], SHAPED, "w", o)
    assert hybrid.kind == "hybrid" and hybrid.stacks == ("self_hosted", "api")
    m1 = month_cost(hybrid, Demand(D(2_629_800), D(0), D(3), DAY_NIGHT), o, 1)
    # Average 1 req/s; base sized for the average: ⌈1 × 1.5 / 1⌉ = 2 + 1 spare = 3 replicas × 730 h × $2 = 4380.
    # API: a quarter of 2,629,800 requests × $0.001 = 657.45. Hosting 10% of GPU; risk 20% of GPU + hosting
    # and 10% of the API spend; platform and operations: both stacks' running costs.
    assert m1.replicas == 3
    assert m1.gpu == D(4380)
    assert m1.direct == pytest.approx(D(4380) + D("657.45"), abs=D("1e-20"))
    assert m1.hosting == D("438.0")
    assert m1.risk == pytest.approx(D("963.60") + D("65.745"), abs=D("1e-20"))
    assert m1.platform == D(5000) + D(1000)  # 0.5 FTE self-hosted + 0.1 FTE API, at 10,000 a month
    assert m1.operations == D(1000)


def test_quality_share_hybrid_sizes_the_pool_for_the_rest() -> None:
    o = org(workloads={"w": {"quality_critical_pct": 50}})
    demand = Demand(D(2_629_800), D(0), D(2), [D(1) / 24] * 24)  # flat day: no overflow hybrid
    (hybrid,) = hybrid_options([API, SELF], demand, "w", o)
    m = month_cost(hybrid, demand, o, 1)
    # Half the requests stay on the API; the pool serves the other half at the peak: ⌈0.5 × 2 × 1.5⌉ + 1 = 3.
    assert hybrid.to_api == D("0.5")
    assert m.replicas == 3
    assert m.direct - m.gpu == D("1314.900")


def _exhaustive(cands: list[Candidate], workloads: list[str], o: object) -> float:
    """The cheapest assignment by trying every one, with the portfolio's own pooled cost model."""
    org_ = o
    h = org_.horizon_months  # type: ignore[attr-defined]
    cap = org_.capacity  # type: ignore[attr-defined]
    grid = evaluate([(c.option, c.demand) for c in cands], org_)  # type: ignore[arg-type]
    by_w = [[i for i, c in enumerate(cands) if c.workload == w] for w in workloads]
    best = math.inf
    for choice in itertools.product(*by_w):
        cost = sum(float(grid.api_cost[i].sum()) for i in choice)
        kinds = {k for i in choice for k in cands[i].option.stacks}
        cost += sum(float(shared_fixed(org_, k, h)) for k in kinds)  # type: ignore[arg-type]
        pools: dict[str, list[int]] = {}
        for i in choice:
            part = cands[i].option.self_part
            if part is not None:
                pools.setdefault(part.key, []).append(i)
        for members in pools.values():
            part = cands[members[0]].option.self_part
            assert part is not None and part.gpu_hourly is not None
            for m in range(h):
                need = sum(grid.need[i, m] for i in members)
                n = max(math.ceil(need - 1e-9), 1) + cap.redundancy
                unit = float(part.gpu_hourly) * part.gpu_count * 730 * 1.1 * 1.2 * (1.0**m)
                cost += n * unit
        best = min(best, cost)
    return best


def test_milp_with_pruning_equals_exhaustive_search() -> None:
    o = org(horizon_months=6)
    slow = Option(key="self_hosted:m@v/slow", kind="self_hosted", label="slow", model="m", vendor="v",
                  gpu_hourly=D(3), gpu_count=1, replica=ReplicaCapacity(D("0.5"), LEVEL, True))  # fmt: skip
    fast = Option(key="self_hosted:m@v/fast", kind="self_hosted", label="fast", model="m", vendor="v",
                  gpu_hourly=D(2), gpu_count=1, replica=ReplicaCapacity(D(6), LEVEL, True))  # fmt: skip
    dear = Option(
        key="api:x/dear", kind="api", label="x/dear", model="d", vendor="x", price_per_request=D("0.01")
    )
    options = [API, dear, SELF, slow, fast]
    demands = {
        "big": Demand(D(60_000_000), D("0.05"), D(2), DAY_NIGHT),
        "small": Demand(D(2_000_000), D(0), D(4), DAY_NIGHT),
        "tiny": Demand(D(30_000), D("0.1"), D(2), [D(1) / 24] * 24),
    }
    cands = [Candidate(w, x, d) for w, d in demands.items() for x in options]
    cands += [Candidate(w, x, d) for w, d in demands.items() for x in hybrid_options(options, d, w, o)]
    result = optimise(cands, list(demands), o)
    assert result.assignment["big"].endswith("v/fast") and result.pools  # a shared pool is in the optimum
    assert result.size[1] < result.size[0]  # pruning removed something...
    assert float(result.total) == pytest.approx(
        _exhaustive(cands, list(demands), o), rel=1e-9
    )  # ...not the optimum
    # The exact total is the Decimal cost of the returned assignment, and reuse is never negative.
    assert result.total <= result.standalone_total
    assert result.standalone_total == sum(tco(c.option, c.demand, o).total(6) for c in cands
                                          if result.assignment[c.workload] == c.option.key)  # fmt: skip
