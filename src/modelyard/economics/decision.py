"""What a ``decide`` run produces: per workload, its options, costs, break-evens, triggers and recommendation,
and for the organisation, the portfolio. Built by :mod:`.engine`, read by :mod:`.recommend` and the
renderers (:mod:`modelyard.report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from modelyard.catalog.gpus import GpuCatalog
from modelyard.catalog.prices import PriceCatalog
from modelyard.catalog.serving import ServingCatalog
from modelyard.economics import triggers as trig
from modelyard.economics.aggregate import QualityCalls
from modelyard.economics.breakeven import PairBreakEven, TornadoBar
from modelyard.economics.conditions import Condition, headline_suffix
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile
from modelyard.economics.portfolio import Portfolio
from modelyard.economics.scorecard import Scorecard
from modelyard.economics.tco import Demand, Tco
from modelyard.economics.workload import WorkloadProfile


@dataclass(frozen=True, slots=True)
class Catalogs:
    prices: PriceCatalog
    gpus: GpuCatalog
    serving: ServingCatalog


@dataclass(slots=True)
class WorkloadDecision:
    profile: WorkloadProfile
    demand: Demand
    growth_source: str
    options: list[Option]
    #: Exact (Decimal) TCO of every feasible option, computed when first read.
    tcos: Mapping[str, Tco]
    #: Scorecard of every feasible option, computed when first read.
    scores: Mapping[str, Scorecard] = field(default_factory=dict)
    #: Horizon TCO of every feasible option in float64, for ranking (exact figures: ``tcos``).
    ranking: dict[str, float] = field(default_factory=dict)
    best_api: str | None = None
    best_self: str | None = None
    #: The API-priced option the traffic already uses (when a candidate), else the cheapest one.
    incumbent: str | None = None
    #: The incumbent's break-even against the self-hosted option that breaks even lowest (run-rate basis).
    break_even: PairBreakEven | None = None
    #: Break-even of every feasible API-priced option against its lowest-breaking self-hosted option.
    break_evens: dict[str, PairBreakEven] = field(default_factory=dict)
    #: The same pair as ``break_even`` on the horizon basis (growth, trends, one-offs): today's volume from
    #: which self-hosting's horizon TCO stays no dearer; ``None``: not below the cap.
    horizon_break_even: Decimal | None = None
    #: The (API, self-hosted) pair the recommendation's reason compares, and horizon-basis break-evens by pair.
    reason_pair: tuple[str, str] | None = None
    horizon: dict[tuple[str, str], Decimal | None] = field(default_factory=dict)
    #: Observed API spend per month: ledger costs when recorded, else the traffic priced at catalog rates.
    api_spend_month: Decimal = Decimal(0)
    api_spend_source: str = ""
    tornado_base: Decimal | None = None
    tornado: list[TornadoBar] = field(default_factory=list)
    #: API price change (%) → whether self-hosting is then cheaper than the incumbent over the horizon.
    self_cheaper_after: dict[Decimal, bool] = field(default_factory=dict)
    triggers: list[trig.Trigger] = field(default_factory=list)
    recommendation: str = ""
    chosen: str | None = None
    why: str = ""
    #: What the recommendation rests on that was not measured (:mod:`.conditions`).
    conditions: list[Condition] = field(default_factory=list)

    @property
    def headline(self) -> str:
        """The recommendation in a few words, with its headline conditions."""
        label = self.option(self.chosen).label if self.chosen else ""
        suffix = headline_suffix(self.conditions)
        return f"{self.recommendation}: {label}" + (f" — {suffix}" if suffix else "")

    def option(self, key: str) -> Option:
        return next(o for o in self.options if o.key == key)


@dataclass(slots=True)
class Decision:
    org: OrgProfile
    traffic_source: str
    catalogs: Catalogs
    today: date
    workloads: list[WorkloadDecision]
    portfolio: Portfolio
    org_triggers: list[trig.Trigger]
    notes: list[str]
    #: Eval runs' calls found in the traffic (a ledger) and left out of the workloads: what quality cost.
    quality_calls: QualityCalls | None = None
