"""The weighted scorecard: four 1–5 scores per option, each with the sentence that derived it.

- Economics: ``1 + 4 × cheapest horizon TCO / this option's`` (the cheapest feasible option scores 5);
- Performance: ``1 + 4 × min(1, objective / expected p95)``; with no objective, relative to the fastest
  known option; *unknown* latency scores a neutral 3 and says so;
- Control: where data and model weights live: self-hosted 5, hybrid 4 (weights in-house, a share of the
  requests external), managed open model 3 (weights portable), proprietary API 2 — minus 1 for an external
  option carrying confidential data;
- Resilience: spare replicas and vendor spread: self-hosted 2 + spares (max 5), hybrid 3 + spares (max 5:
  the API absorbs a pool failure), an API 3, minus 1 when one vendor carries more than the concentration
  threshold of the spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile, WorkloadPolicy
from modelyard.economics.workload import WorkloadProfile


@dataclass(frozen=True, slots=True)
class Score:
    dimension: str
    score: Decimal
    why: str


@dataclass(frozen=True, slots=True)
class Scorecard:
    option: str
    scores: list[Score]
    weighted: Decimal


def _q(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"))


def scorecard(
    option: Option, tco: Decimal, cheapest: Decimal, fastest_p95: float | None, wl: WorkloadProfile,
    org: OrgProfile, concentrated_vendor: str | None,
) -> Scorecard:  # fmt: skip
    """Score ``option`` for ``wl``; ``cheapest`` and ``fastest_p95`` are over its feasible options."""
    economics = 1 + 4 * cheapest / tco if tco > 0 else Decimal(5)
    scores = [
        Score("economics", _q(economics), f"cheapest ${cheapest:,.0f} / this ${tco:,.0f} over the horizon"),
        _performance(option, org.workloads.get(wl.name, WorkloadPolicy()), fastest_p95),
        _control(option, wl),
        _resilience(option, org, concentrated_vendor),
    ]
    w = org.scorecard_weights
    weights = {
        "economics": w.economics,
        "performance": w.performance,
        "control": w.control,
        "resilience": w.resilience,
    }
    weighted = sum((weights[s.dimension] * s.score for s in scores), Decimal(0)) / sum(weights.values())
    return Scorecard(option=option.key, scores=scores, weighted=_q(weighted))


def _performance(option: Option, policy: WorkloadPolicy, fastest: float | None) -> Score:
    p95 = option.latency_p95_ms
    if p95 is None:
        return Score("performance", Decimal(3), "latency unknown for this option (no measurement): neutral 3")
    objective = policy.slo.e2e_p95_ms
    ref, name = (
        (objective, "objective") if objective is not None else (fastest or p95, "fastest known option")
    )
    ratio = min(Decimal(1), Decimal(str(ref)) / Decimal(str(p95)))
    return Score("performance", _q(1 + 4 * ratio), f"p95 {p95:.0f} ms vs {name} {ref:.0f} ms")


def _control(option: Option, wl: WorkloadProfile) -> Score:
    base = {"self_hosted": 5, "hybrid": 4, "managed_open": 3, "api": 2}[option.kind]
    why = {"self_hosted": "data and weights stay in-house", "managed_open": "open weights, external host",
           "api": "proprietary model, external host",
           "hybrid": f"weights in-house; {float(option.to_api):.0%} of requests to an external API"}[option.kind]  # fmt: skip
    if option.kind != "self_hosted" and wl.data_class == "confidential":
        return Score("control", Decimal(base - 1), why + "; confidential data leaves the organisation (−1)")
    return Score("control", Decimal(base), why)


def _resilience(option: Option, org: OrgProfile, concentrated_vendor: str | None) -> Score:
    spares = org.capacity.redundancy
    if option.kind == "self_hosted":
        return Score("resilience", Decimal(min(5, 2 + spares)), f"{spares} spare replica(s) (N+{spares})")
    if option.kind == "hybrid":
        return Score(
            "resilience",
            Decimal(min(5, 3 + spares)),
            f"N+{spares} pool, and the API can absorb a pool failure",
        )
    if concentrated_vendor == option.vendor:
        return Score(
            "resilience", Decimal(2), f"vendor SLA, but {option.vendor} already carries most API spend (−1)"
        )
    return Score("resilience", Decimal(3), "vendor SLA; one vendor")
