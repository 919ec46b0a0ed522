"""The options a workload could run on, priced and sized for that workload.

- ``api``: a proprietary model behind an API, priced from the price catalog (the one source of API prices);
- ``managed_open``: an open model behind a managed API (also priced from the price catalog);
- ``self_hosted``: an open model on rented GPUs: a GPU offer plus a serving profile (measured, published
  or estimated) sized by :mod:`.capacity`;
- ``hybrid``: a self-hosted part and an API part carrying a share of the requests (built by :mod:`.hybrid`).

An option that cannot serve the workload (no price, weights that do not fit, latency objective missed,
data class not allowed, quality below the floor) is kept with ``infeasible`` saying why, so the report can
show it was considered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Literal

from modelyard.catalog.estimate import estimate
from modelyard.catalog.gpus import GpuCatalog
from modelyard.catalog.prices import MILLION, ModelPrice, PriceCatalog
from modelyard.catalog.serving import ServingCatalog, ServingProfile, Workload
from modelyard.economics.capacity import ReplicaCapacity, replica_capacity
from modelyard.economics.org import OptionKind, OrgProfile, WorkloadPolicy
from modelyard.economics.throughput import candidates, profile_for
from modelyard.economics.workload import WorkloadProfile
from modelyard.errors import ConfigError
from modelyard.providers.base import Usage

#: The kinds of option: the org profile's three stacks, plus hybrids that combine two of them.
Kind = OptionKind | Literal["hybrid"]


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    kind: Kind
    label: str
    #: The model the option serves (for quality lookups and the recommendation sentence).
    model: str
    #: Who is paid: the API provider or the GPU vendor.
    vendor: str
    price_per_request: Decimal | None = None
    price_source: str | None = None
    #: Date of the price figure (API price or GPU offer), to tell how old the catalog behind it is.
    price_as_of: date | None = None
    gpu_hourly: Decimal | None = None
    gpu_count: int = 0
    gpu: str | None = None
    replica: ReplicaCapacity | None = None
    #: measured | published | estimated (self-hosted throughput), or "catalog" (API prices).
    source: str = "catalog"
    reference: str | None = None
    #: Quality score in [0, 1] from the eval harness, ``None`` when never measured.
    quality: float | None = None
    #: p95 end-to-end latency the option is expected to give this workload, when known.
    latency_p95_ms: float | None = None
    infeasible: str | None = None
    #: A hybrid's share of the requests sent to its API part (see :attr:`to_api`).
    api_share: Decimal | None = None
    #: The rate the self-hosted part is sized for, as a multiple of the workload's average rate; ``None``:
    #: the workload's own peak (or hourly shape, in an autoscaled pool).
    self_peak: Decimal | None = None
    #: A hybrid's (self-hosted part, API part).
    parts: tuple[Option, Option] | None = None

    @property
    def feasible(self) -> bool:
        return self.infeasible is None

    @property
    def self_part(self) -> Option | None:
        """The self-hosted option carrying (part of) the load, if any."""
        if self.parts is not None:
            return self.parts[0]
        return self if self.kind == "self_hosted" else None

    @property
    def api_part(self) -> Option | None:
        """The API-priced option carrying (part of) the load, if any."""
        if self.parts is not None:
            return self.parts[1]
        return self if self.kind in ("api", "managed_open") else None

    @property
    def to_api(self) -> Decimal:
        """Share of the requests the API part serves: 1 for API options, 0 self-hosted, between for hybrids."""
        if self.api_share is not None:
            return self.api_share
        return Decimal(0) if self.kind == "self_hosted" else Decimal(1)

    @property
    def stacks(self) -> tuple[OptionKind, ...]:
        """The org stacks this option needs (a hybrid needs two)."""
        if self.parts is not None:
            return (self.parts[0].kind, self.parts[1].kind)  # type: ignore[return-value]
        return (self.kind,)  # type: ignore[return-value]


def price_per_request(price: ModelPrice, wl: WorkloadProfile) -> Decimal:
    """Mean cost of one request with the workload's mean token counts, at catalog rates."""
    rates = price.rates_for(Usage(input_tokens=int(wl.input_tokens_mean)))
    uncached = max(wl.input_tokens_mean - wl.cached_input_tokens_mean, Decimal(0))
    cached_rate = rates.cached_input if rates.cached_input is not None else rates.input
    total = (
        uncached * rates.input
        + wl.cached_input_tokens_mean * cached_rate
        + wl.output_tokens_mean * rates.output
    )
    return total / MILLION


def build_options(
    wl: WorkloadProfile, org: OrgProfile, prices: PriceCatalog, gpus: GpuCatalog, serving: ServingCatalog,
    today: date,
) -> list[Option]:  # fmt: skip
    """Every candidate in the org profile, priced and sized for ``wl``, with feasibility checked."""
    policy = org.workloads.get(wl.name, WorkloadPolicy())
    managed = org.candidates.managed_open
    options = [
        *(_api(wl, "api", c.provider, c.model, c.model, prices) for c in org.candidates.api),
        *(_api(wl, "managed_open", c.provider, c.model, c.open_model, prices) for c in managed),
        *(_self_hosted(wl, org, policy, c.model, c.quantization, c.offer, c.gpu_count, gpus, serving, today)
          for c in org.candidates.self_hosted),
    ]  # fmt: skip
    return [_check(o, wl, org, policy) for o in options]


def _api(
    wl: WorkloadProfile, kind: OptionKind, provider: str, model: str, served: str, prices: PriceCatalog
) -> Option:
    price = prices.price_for(provider, model)
    if price is None:
        raise ConfigError(
            f"candidates.{kind}: no price for {provider}/{model} in the price catalog; "
            "fix the name or add it to a price file listed in catalog.price_files"
        )
    observed = next((u for u in wl.models if u.model == model), None)
    return Option(
        key=f"{kind}:{provider}/{model}",
        kind=kind,
        label=f"{provider}/{model}",
        model=served,
        vendor=provider,
        price_per_request=price_per_request(price, wl),
        price_source=f"{price.source} ({price.as_of.isoformat()})",
        price_as_of=price.as_of,
        # The traffic's own p95 is the evidence for the model it already uses; other models are unknown.
        latency_p95_ms=wl.latency_ms.get("p95") if observed else None,
    )


def _self_hosted(
    wl: WorkloadProfile, org: OrgProfile, policy: WorkloadPolicy, model: str, quantization: str,
    offer_key: str, gpu_count: int, gpus: GpuCatalog, serving: ServingCatalog, today: date,
) -> Option:  # fmt: skip
    offer = gpus.offer(offer_key)
    key = f"self_hosted:{model}@{offer_key}x{gpu_count}:{quantization}"
    label = f"{model} on {gpu_count}x {offer.gpu} ({offer.vendor}, {quantization})"
    base = Option(
        key=key, kind="self_hosted", label=label, model=model, vendor=offer.vendor, gpu=offer.gpu,
        gpu_count=gpu_count, gpu_hourly=offer.hourly(org.capacity.gpu_pricing),
        price_source=f"{offer.source} ({offer.as_of.isoformat()})",
        price_as_of=offer.as_of,
    )  # fmt: skip
    shape = Workload(
        input_tokens_mean=float(wl.input_tokens_mean),
        output_tokens_mean=max(float(wl.output_tokens_mean), 1.0),
    )
    arch, spec = serving.arch(model), gpus.spec(offer.gpu)

    def estimator(at: Workload) -> ServingProfile | None:
        return estimate(arch, spec, model, offer.gpu, gpu_count, quantization, at, today)

    found = candidates(serving.profiles, model, offer.gpu, gpu_count, quantization)
    profile = profile_for(found, shape, estimator)
    if profile is None:
        if arch is None or spec is None:
            missing = f"model '{model}'" if arch is None else f"GPU '{offer.gpu}'"
            return _replace(base, infeasible=f"no serving profile and no estimate for {missing}")
        return _replace(base, source="estimated", infeasible="weights do not fit in GPU memory")
    replica = replica_capacity(profile, wl.output_tokens_mean, policy.slo)
    sourced = _replace(base, source=profile.source, reference=profile.reference or profile.engine)
    if replica is None:
        return _replace(sourced, infeasible="no concurrency level meets the latency objective")
    return _replace(sourced, replica=replica, latency_p95_ms=replica.level.e2e_p95_ms)


def _replace(option: Option, **changes: object) -> Option:
    return replace(option, **changes)  # type: ignore[arg-type]


def _check(option: Option, wl: WorkloadProfile, org: OrgProfile, policy: WorkloadPolicy) -> Option:
    quality = org.quality_of(wl.name, option.model)
    option = _replace(option, quality=quality.score if quality else None)
    if option.infeasible:
        return option
    allowed = org.data_classes.get(wl.data_class, [])  # type: ignore[call-overload]
    if refused := [k for k in option.stacks if k not in allowed]:
        return _replace(option, infeasible=f"{wl.data_class} data may not go to {refused[0]} options")
    if policy.quality_floor is not None and quality is not None and quality.score < policy.quality_floor:
        return _replace(
            option, infeasible=f"quality {quality.score:.2f} below the floor {policy.quality_floor:.2f}"
        )
    slo = policy.slo.e2e_p95_ms
    if slo is not None and option.latency_p95_ms is not None and option.latency_p95_ms > slo:
        return _replace(option, infeasible=f"p95 latency {option.latency_p95_ms:.0f} ms exceeds {slo:.0f} ms")
    return option
