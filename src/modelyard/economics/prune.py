"""Exact pre-solve pruning for the portfolio MILP: drop options no optimal solution needs.

Each rule removes a candidate only when any solution using it can be turned into one that does not, at no
higher cost — so the optimum of the smaller program is the optimum of the full one:

1. **Dominated API options.** API-priced options of the same stack have only a per-workload cost; the
   cheapest one for a workload is at least as good as the others in every solution.
2. **Dominated GPU pools.** Pool ``q`` dominates pool ``p`` when a replica of ``q`` costs no more in any
   month and, for every (workload, variant) that can use ``p``, ``q`` offers the same variant needing no
   more replicas in any month. Moving all of ``p``'s workloads into ``q`` never costs more: the replica
   count of a merged pool, ``max(⌈a + b⌉, 1) + spares``, is at most the sum of the two pools'.
3. **Hopeless self-hosting.** Adding a workload with fractional need ``d`` to a pool adds at least
   ``⌈d⌉ − 1`` replicas whatever else is in it. When that floor, plus the option's own API-side cost, already
   exceeds what the workload would cost on its cheapest API option *including* adopting that API's stack,
   the option is never strictly better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Costs are float64: a rule fires only on a margin larger than float noise.
_REL = 1e-9


@dataclass(frozen=True, slots=True)
class Model:
    """The portfolio program's data, one entry per feasible candidate (see :mod:`.portfolio`)."""

    workload: NDArray[np.int64]  # index into ``workloads``
    pool: NDArray[np.int64]  # index into ``pools``, −1 without a self-hosted part
    stacks: list[tuple[int, ...]]  # stack indexes the candidate needs adopted
    variant: list[str]  # what the candidate is apart from its pool
    rps: NDArray[np.float64]
    api_cost: NDArray[np.float64]  # horizon API-side cost
    need: NDArray[np.float64]  # (candidates, months) fractional replicas
    unit: NDArray[np.float64]  # (pools, months) cost of one replica-month
    fixed: NDArray[np.float64]  # (stacks,) horizon fixed cost of adopting each stack
    spares: int
    pools: list[str]
    workloads: list[str]


def prune(model: Model) -> NDArray[np.bool_]:
    """A mask of the candidates to keep."""
    keep = np.ones(len(model.workload), dtype=np.bool_)
    _cheapest_api(model, keep)
    _dominated_pools(model, keep)
    _hopeless_self_hosting(model, keep)
    return keep


def _cheapest_api(model: Model, keep: NDArray[np.bool_]) -> None:
    best: dict[tuple[int, tuple[int, ...]], int] = {}
    for i in np.flatnonzero(model.pool < 0):
        key = (int(model.workload[i]), model.stacks[i])
        j = best.get(key)
        if j is None or model.api_cost[i] < model.api_cost[j]:
            if j is not None:
                keep[j] = False
            best[key] = int(i)
        else:
            keep[i] = False


def _dominated_pools(model: Model, keep: NDArray[np.bool_]) -> None:
    rows: dict[int, dict[tuple[int, str], int]] = {}
    for i in np.flatnonzero(model.pool >= 0):
        rows.setdefault(int(model.pool[i]), {})[(int(model.workload[i]), model.variant[i])] = int(i)
    alive: list[int] = sorted(rows)
    for p in list(alive):
        for q in alive:
            if q != p and _dominates(model, rows[q], rows[p], q, p):
                keep[list(rows[p].values())] = False
                alive.remove(p)
                break


def _dominates(
    model: Model, rq: dict[tuple[int, str], int], rp: dict[tuple[int, str], int], q: int, p: int
) -> bool:
    if not rp.keys() <= rq.keys():
        return False
    unit_q, unit_p = model.unit[q], model.unit[p]
    if np.any(unit_q > unit_p * (1 + _REL)):
        return False
    ip = np.asarray(list(rp.values()))
    iq = np.asarray([rq[k] for k in rp])
    need_q, need_p = model.need[iq], model.need[ip]
    if np.any(need_q > need_p * (1 + _REL)):
        return False
    # Equal in every respect: keep one, deterministically (the lower pool index wins).
    strictly = bool(np.any(unit_q < unit_p * (1 - _REL)) or np.any(need_q < need_p * (1 - _REL)))
    return strictly or q < p


def _hopeless_self_hosting(model: Model, keep: NDArray[np.bool_]) -> None:
    stack_fixed = np.asarray([sum(model.fixed[s] for s in stacks) for stacks in model.stacks])
    api_only = (model.pool < 0) & keep
    fallback = np.full(len(model.workloads), np.inf)
    np.minimum.at(fallback, model.workload[api_only], (model.api_cost + stack_fixed)[api_only])
    hosted = np.flatnonzero((model.pool >= 0) & keep)
    if hosted.size == 0:
        return
    extra = np.maximum(np.ceil(model.need[hosted] - 1e-6) - 1.0, 0.0)  # replicas added at least
    floor = model.api_cost[hosted] + (extra * model.unit[model.pool[hosted]]).sum(axis=1)
    limit = fallback[model.workload[hosted]]
    keep[hosted[floor > limit * (1 + _REL)]] = False
