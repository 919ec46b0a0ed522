"""Planning mode: workloads declared before any traffic exists, costed like measured ones.

A CTO asks "API or self-host?" before launch, from expected volumes. A plan file states, per workload, the
expected requests (per month, or per second at the busiest hour), tokens per request, the daily shape,
growth, and the same policy the org profile takes (data class, latency objectives, quality floor). Each
becomes a :class:`~.workload.WorkloadProfile` with ``origin = "planned"``: the report labels every figure
of it "planned", and its recommendation carries the condition in its headline. A workload present in the
traffic too is taken from the traffic (measured wins) and the plan's entry is reported as ignored.

The file format (``examples/plan.yaml``, docs/decide.md "Planning mode")::

    workloads:
      launch-assistant:
        requests_per_month: 2000000        # or peak_requests_per_s: 4.5
        tokens: {input: 1500, output: 300, cached_input: 500}
        peak_to_avg: 3                      # or hour_of_day: [24 shares]
        growth_pct_per_month: 5
        runs_on: {provider: openai, model: gpt-4.1-mini}   # what it would call today, if anything
        data_class: internal
        slo: {ttft_p95_ms: 1000}
        quality_floor: 0.8
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, model_validator

from modelyard.config.strict import Strict
from modelyard.economics.capacity import SECONDS_PER_MONTH
from modelyard.economics.org import OrgProfile, WorkloadPolicy, load_yaml_file
from modelyard.economics.workload import DAYS_PER_MONTH, ModelUse, WorkloadProfile, classify


class PlannedTokens(Strict):
    input: float = Field(ge=0)
    output: float = Field(gt=0)
    #: Part of ``input`` expected to be read from the provider's prompt cache.
    cached_input: float = Field(0, ge=0)

    @model_validator(mode="after")
    def _cached_within_input(self) -> PlannedTokens:
        if self.cached_input > self.input:
            raise ValueError("cached_input cannot exceed input")
        return self


class RunsOn(Strict):
    provider: str
    model: str


class PlannedWorkload(WorkloadPolicy):
    requests_per_month: float | None = Field(None, gt=0)
    #: Alternative to ``requests_per_month``: the expected rate in the busiest hour.
    peak_requests_per_s: float | None = Field(None, gt=0)
    tokens: PlannedTokens
    #: Busiest hour ÷ average hour (1–24); or give ``hour_of_day``.
    peak_to_avg: float | None = Field(None, ge=1, le=24)
    #: Share of a day's requests in each UTC hour (24 non-negative numbers; normalised).
    hour_of_day: list[float] | None = Field(None, min_length=24, max_length=24)
    growth_pct_per_month: float | None = Field(None, gt=-100, le=1000)
    runs_on: RunsOn | None = None

    @model_validator(mode="after")
    def _one_volume_one_shape(self) -> PlannedWorkload:
        if (self.requests_per_month is None) == (self.peak_requests_per_s is None):
            raise ValueError("give exactly one of requests_per_month or peak_requests_per_s")
        if self.peak_to_avg is not None and self.hour_of_day is not None:
            raise ValueError("give peak_to_avg or hour_of_day, not both")
        if self.hour_of_day is not None and (min(self.hour_of_day) < 0 or sum(self.hour_of_day) <= 0):
            raise ValueError("hour_of_day: 24 non-negative shares with a positive sum")
        return self

    def shape(self) -> list[float]:
        """Hour-of-day shares summing to 1: as given, else one busiest hour at ``peak_to_avg`` × the
        average and the other 23 equal (so the busiest hour ÷ average is exactly ``peak_to_avg``)."""
        if self.hour_of_day is not None:
            total = sum(self.hour_of_day)
            return [h / total for h in self.hour_of_day]
        peak = (self.peak_to_avg or 1.0) / 24
        rest = (1 - peak) / 23
        return [rest] * 12 + [peak] + [rest] * 11


class Plan(Strict):
    workloads: dict[str, PlannedWorkload] = Field(min_length=1)


def load_plan(path: str | Path) -> Plan:
    """Load and validate a plan file; errors name the file and the field path."""
    return load_yaml_file(Path(path), Plan, "plan", "'workloads'")


def with_plan_policies(org: OrgProfile, plan: Plan) -> OrgProfile:
    """The org profile with each planned workload's policy (data class, objectives, floor…) added.

    A policy the org profile states for the same workload wins: it is the organisation's statement."""
    policy_fields = set(WorkloadPolicy.model_fields)
    added = {
        name: WorkloadPolicy.model_validate(w.model_dump(include=policy_fields))
        for name, w in plan.workloads.items()
        if name not in org.workloads
    }
    return org.model_copy(update={"workloads": {**org.workloads, **added}})


def planned_profiles(
    plan: Plan, org: OrgProfile, measured: set[str]
) -> tuple[list[WorkloadProfile], list[str]]:
    """A profile per planned workload not in ``measured``; and a note per planned one that is."""
    notes = [
        f"{name}: measured traffic exists, so the plan's entry for it was ignored"
        for name in sorted(plan.workloads)
        if name in measured
    ]
    profiles = [_profile(name, w, org) for name, w in sorted(plan.workloads.items()) if name not in measured]
    return profiles, notes


def _profile(name: str, w: PlannedWorkload, org: OrgProfile) -> WorkloadProfile:
    shape = w.shape()
    peak_to_avg = max(shape) * 24
    seconds = float(SECONDS_PER_MONTH)
    if w.requests_per_month is not None:
        per_month = w.requests_per_month
    else:
        assert w.peak_requests_per_s is not None
        per_month = w.peak_requests_per_s / peak_to_avg * seconds
    policy = org.workloads.get(name, w)
    data_class = policy.data_class or w.data_class or "internal"
    requests = round(per_month)
    models = [ModelUse(w.runs_on.model, w.runs_on.provider, requests, Decimal(0), 0)] if w.runs_on else []
    avg = per_month / seconds
    month = Decimal(str(round(per_month, 3)))
    return WorkloadProfile(
        name=name,
        data_class=data_class,
        # One planned month stands for the window, so per-window figures scale by exactly 1.
        days_observed=DAYS_PER_MONTH,
        requests=requests,
        requests_per_month=month,
        input_tokens_mean=Decimal(str(w.tokens.input)),
        cached_input_tokens_mean=Decimal(str(w.tokens.cached_input)),
        output_tokens_mean=Decimal(str(w.tokens.output)),
        avg_rps=avg,
        peak_rps=avg * peak_to_avg,
        peak_to_avg=peak_to_avg,
        hour_of_day=shape,
        mean_latency_ms=0.0,
        concurrency_mean=0.0,
        concurrency_peak=0.0,
        latency_ms={},
        ttft_ms={"p50": None, "p95": None, "p99": None},
        error_rate=0.0,
        growth_per_month=None if w.growth_pct_per_month is None else w.growth_pct_per_month / 100,
        monthly_requests={},
        monthly_spend_usd={},
        models=models,
        restricted_external=0,
        workload_class=classify(month, data_class, DAYS_PER_MONTH, policy.quality_floor is not None),
        origin="planned",
    )
