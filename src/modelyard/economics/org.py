"""The organisation profile: one YAML file, validated strictly (unknown keys rejected, errors name the path).

Money is ``Decimal`` (write it quoted or as an integer); percentages are plain numbers (``15`` = 15%).
See ``examples/org.yaml`` for a commented example and ``docs/decide.md`` for every field.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from modelyard.catalog.gpus import PricingMode
from modelyard.config.loader import format_validation_error
from modelyard.config.strict import Strict
from modelyard.errors import ConfigError

DataClass = Literal["public", "internal", "confidential", "restricted"]
OptionKind = Literal["api", "managed_open", "self_hosted"]
Money = Decimal
Pct = Decimal


class Engineering(Strict):
    #: Fully loaded yearly cost of one engineer (salary, benefits, overhead).
    loaded_cost_per_year: Money = Field(gt=0)


class StackCosts(Strict):
    """What adopting one kind of option costs the organisation besides compute."""

    #: One-off engineering to build or integrate, in engineer-months.
    build_engineer_months: Decimal = Field(Decimal(0), ge=0)
    #: Ongoing engineering to run it, in full-time engineers.
    run_fte: Decimal = Field(Decimal(0), ge=0)
    #: On-call and operations overhead per month (pager, incident time, tooling).
    ops_per_month: Money = Field(Decimal(0), ge=0)
    #: One-off security/compliance review.
    security_review: Money = Field(Decimal(0), ge=0)
    #: Hosting beyond GPUs (storage, network, CPU nodes, observability) as % of GPU spend.
    hosting_overhead_pct: Pct = Field(Decimal(0), ge=0, le=1000)
    #: Risk premium as % of direct + hosting cost (outages, vendor or obsolescence risk).
    risk_premium_pct: Pct = Field(Decimal(0), ge=0, le=1000)
    #: The organisation already has this stack: its build and review are reuse savings.
    existing: bool = False


class Stacks(Strict):
    api: StackCosts = StackCosts()
    managed_open: StackCosts = StackCosts()
    self_hosted: StackCosts = StackCosts()


class Trends(Strict):
    #: Yearly traffic growth in %; ``null`` uses the trend fitted from the traffic history.
    volume_growth_pct_per_year: Pct | None = None
    #: Yearly change of API prices at constant quality (e.g. -30).
    api_price_pct_per_year: Pct = Field(Decimal(0), gt=-100)
    #: Yearly change of GPU-hour prices.
    gpu_price_pct_per_year: Pct = Field(Decimal(0), gt=-100)


class Capacity(Strict):
    gpu_pricing: PricingMode = "on_demand"
    #: ``fixed``: the pool is sized for the peak all month; ``autoscaled``: replicas follow the hourly load.
    pool: Literal["fixed", "autoscaled"] = "fixed"
    #: Spare replicas kept for failures (N+1 = 1).
    redundancy: int = Field(1, ge=0, le=8)
    #: Multiplier on the busiest hour's average rate, for bursts inside the hour.
    peak_headroom: Decimal = Field(Decimal("1.2"), ge=1)
    #: Hours billed per month.
    hours_per_month: Decimal = Field(Decimal(730), gt=0)


class Weights(Strict):
    economics: Decimal = Field(Decimal(35), ge=0)
    performance: Decimal = Field(Decimal(25), ge=0)
    control: Decimal = Field(Decimal(25), ge=0)
    resilience: Decimal = Field(Decimal(15), ge=0)

    @model_validator(mode="after")
    def _positive(self) -> Weights:
        if self.economics + self.performance + self.control + self.resilience <= 0:
            raise ValueError("at least one scorecard weight must be positive")
        return self


class Triggers(Strict):
    monthly_api_spend_usd: Money = Field(Decimal(10_000), ge=0)
    #: A vendor carrying more than this % of API spend fires the concentration trigger.
    vendor_concentration_pct: Pct = Field(Decimal(80), ge=0, le=100)
    #: Consecutive months past break-even before the volume trigger fires.
    sustained_months: int = Field(2, ge=1)
    #: API price changes to evaluate against current spend, in % (e.g. [-50, 20]).
    price_change_pct: list[Pct] = Field(default_factory=lambda: [Decimal(20)])


class ApiCandidate(Strict):
    provider: str
    model: str


class ManagedOpenCandidate(Strict):
    provider: str
    model: str
    #: The open model served, for quality lookups.
    open_model: str


class SelfHostedCandidate(Strict):
    model: str
    quantization: str = "bf16"
    #: ``vendor/gpu`` key of a GPU offer in the catalog.
    offer: str
    gpu_count: int = Field(1, ge=1, le=64)


class Candidates(Strict):
    api: list[ApiCandidate] = Field(default_factory=list)
    managed_open: list[ManagedOpenCandidate] = Field(default_factory=list)
    self_hosted: list[SelfHostedCandidate] = Field(default_factory=list)


class Slo(Strict):
    ttft_p95_ms: float | None = Field(None, gt=0)
    e2e_p95_ms: float | None = Field(None, gt=0)


class WorkloadPolicy(Strict):
    data_class: DataClass | None = None
    slo: Slo = Slo()
    #: Minimum eval score (0–1) a model must have measured for this workload.
    quality_floor: float | None = Field(None, ge=0, le=1)
    #: Work that can wait in a queue (batch jobs): capacity is sized for the average, not the busiest hour.
    deferrable: bool = False
    #: % of requests that must stay on the best API model: adds a hybrid option self-hosting the rest.
    quality_critical_pct: Decimal | None = Field(None, gt=0, lt=100)
    description: str | None = None


class QualityScore(Strict):
    workload: str
    model: str
    score: float = Field(ge=0, le=1)
    source: str


class CatalogFiles(Strict):
    price_files: list[str] = Field(default_factory=list)
    gpu_files: list[str] = Field(default_factory=list)
    profiles_dir: str = ".modelyard/profiles"
    #: Prices and GPU offers older than this (days) are flagged where a decision relies on them.
    max_age_days: int = Field(180, ge=1)


class TrafficImport(Strict):
    #: LiteLLM spend logs carry no workload: take it from the first request tag (``request_tag``), any column
    #: of the export (``team_id``, ``model_group``, ``end_user``, a UI export's ``Team`` …) or a key of its
    #: metadata JSON (``metadata.user_api_key_alias``): the same values as ``decide --workload-from``. The
    #: column is checked against the file when it is read; the error lists the columns the file has.
    litellm_workload_from: str = Field("request_tag", min_length=1)
    #: OpenAI usage exports carry no workload: take it from the project, the API key, the user or the model.
    openai_workload_from: Literal["project", "api_key", "user", "model"] = "project"
    #: OpenAI project or API-key id (or name) → workload name; ids not listed are used as they are.
    openai_workloads: dict[str, str] = Field(default_factory=dict)


def _default_data_classes() -> dict[DataClass, list[OptionKind]]:
    return {
        "public": ["api", "managed_open", "self_hosted"],
        "internal": ["api", "managed_open", "self_hosted"],
        "confidential": ["api", "self_hosted"],
        "restricted": ["self_hosted"],
    }


class OrgProfile(Strict):
    organisation: str
    horizon_months: int = Field(36, ge=1, le=120)
    engineering: Engineering
    stacks: Stacks = Stacks()
    trends: Trends = Trends()
    capacity: Capacity = Capacity()
    scorecard_weights: Weights = Weights()
    triggers: Triggers = Triggers()
    candidates: Candidates
    #: Which option kinds may carry each data class.
    data_classes: dict[DataClass, list[OptionKind]] = Field(default_factory=_default_data_classes)
    workloads: dict[str, WorkloadPolicy] = Field(default_factory=dict)
    quality: list[QualityScore] = Field(default_factory=list)
    catalog: CatalogFiles = CatalogFiles()
    traffic: TrafficImport = TrafficImport()

    @model_validator(mode="after")
    def _has_candidates(self) -> OrgProfile:
        c = self.candidates
        if not (c.api or c.managed_open or c.self_hosted):
            raise ValueError("candidates: list at least one api, managed_open or self_hosted option")
        return self

    def quality_of(self, workload: str, model: str) -> QualityScore | None:
        return next((q for q in self.quality if q.workload == workload and q.model == model), None)


_M = TypeVar("_M", bound=BaseModel)


def load_yaml_file(path: Path, model: type[_M], what: str, keys: str) -> _M:
    """A YAML file validated as ``model``; every failure is a ConfigError naming the file (and field path).

    ``what`` names the file's role in messages; ``keys`` says what the top-level mapping should hold."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with {keys}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None


def load_org(path: str | Path) -> OrgProfile:
    """Load and validate an organisation profile; relative catalog paths are relative to the file."""
    path = Path(path)
    org = load_yaml_file(
        path, OrgProfile, "organisation profile", "'organisation', 'engineering' and 'candidates'"
    )
    base = path.parent

    def rel(p: str) -> str:
        return p if Path(p).is_absolute() else str((base / p).resolve())

    update: dict[str, object] = {
        "price_files": [rel(p) for p in org.catalog.price_files],
        "gpu_files": [rel(p) for p in org.catalog.gpu_files],
    }
    # Written in the file: relative to the file, like the other paths. Left out: the default stays
    # relative to the working directory, where `modelyard bench-endpoint` writes its profiles.
    if "profiles_dir" in org.catalog.model_fields_set:
        update["profiles_dir"] = rel(org.catalog.profiles_dir)
    files = org.catalog.model_copy(update=update)
    return org.model_copy(update={"catalog": files})
