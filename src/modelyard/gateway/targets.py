"""Resolve a request to its workload and its target (provider adapter, upstream model, price).

The model table is built once at start-up from the config and the price catalog, so resolving a request
is two dictionary look-ups. Resolution is a pure function of (config, request): tested from tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelyard.catalog.prices import ModelPrice, PriceCatalog
from modelyard.config.schema import Config, ModelKind, WorkloadConfig
from modelyard.errors import InvalidRequest, NotFound
from modelyard.providers.base import Adapter
from modelyard.routing.plan import Route

WORKLOAD_HEADER = "X-Modelyard-Workload"


@dataclass(frozen=True, slots=True)
class Target:
    """Where one public model name goes."""

    public_model: str
    provider: str
    provider_kind: str
    #: ``self_hosted`` or ``external``: what data-class policy checks.
    hosting: str
    upstream_model: str
    kind: ModelKind
    adapter: Adapter
    price: ModelPrice | None
    price_version: str | None


@dataclass(frozen=True, slots=True)
class Workload:
    name: str | None
    data_class: str | None
    log_content: bool
    default_model: str | None


NO_WORKLOAD = Workload(None, None, False, None)


def build_targets(
    config: Config, adapters: Mapping[str, Adapter], catalog: PriceCatalog
) -> dict[str, Target]:
    """One :class:`Target` per configured public model name."""
    targets: dict[str, Target] = {}
    for name, model in config.models.items():
        provider = config.providers[model.provider]
        upstream = model.upstream_model or name
        price = catalog.price_for(provider.kind, model.price_as or upstream)
        targets[name] = Target(
            public_model=name,
            provider=model.provider,
            provider_kind=provider.kind,
            hosting=provider.resolved_hosting,
            upstream_model=upstream,
            kind=model.kind,
            adapter=adapters[model.provider],
            price=price,
            price_version=catalog.version if price else None,
        )
    return targets


def unpriced_models(config: Config, catalog: PriceCatalog) -> list[str]:
    """Public model names the catalog has no price for: their calls are recorded as unpriced."""
    return [
        name
        for name, model in config.models.items()
        if catalog.price_for(
            config.providers[model.provider].kind, model.price_as or model.upstream_model or name
        )
        is None
    ]


def _workload(name: str, raw: WorkloadConfig) -> Workload:
    return Workload(name, raw.data_class, raw.log_content, raw.model)


def resolve_workload(config: Config, header: str | None, body: Mapping[str, Any]) -> Workload:
    """The request's workload: the header, else ``metadata.workload`` in the body, else the default.

    With no workloads configured every request is accepted without one; once workloads exist, a request
    must name a known one (or the config must set ``server.default_workload``), so traffic is never
    metered under a guess.
    """
    name = header
    param = "header " + WORKLOAD_HEADER
    if name is None:
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and metadata.get("workload") is not None:
            name, param = metadata["workload"], "metadata.workload"
    if name is None:
        name = config.server.default_workload
    if name is None:
        if not config.workloads:
            return NO_WORKLOAD
        raise InvalidRequest(
            f"name a workload with the {WORKLOAD_HEADER} header or metadata.workload; "
            f"allowed: {', '.join(sorted(config.workloads))}",
            code="workload_required",
            param="metadata.workload",
        )
    workload = config.workloads.get(name) if isinstance(name, str) else None
    if workload is None:
        raise InvalidRequest(
            f"unknown workload {name!r} ({param}); allowed: {', '.join(sorted(config.workloads)) or '(none)'}",
            code="unknown_workload",
            param="metadata.workload",
        )
    return _workload(name, workload)


def build_routes(config: Config, targets: Mapping[str, Target]) -> dict[str, Route[Target]]:
    """Every public name a client may ask for: each model (a single-target route) and each route."""
    routes: dict[str, Route[Target]] = {
        name: Route(name, "single", (target,), (1.0,)) for name, target in targets.items()
    }
    for name, raw in config.routes.items():
        routes[name] = Route(
            name=name,
            strategy=raw.strategy,
            targets=tuple(targets[t.model] for t in raw.targets),
            weights=tuple(t.weight for t in raw.targets),
            validators=raw.validators,
            shadow=targets[raw.shadow.model] if raw.shadow else None,
            shadow_sample=raw.shadow.sample if raw.shadow else 0.0,
        )
    return routes


def resolve_route(
    routes: Mapping[str, Route[Target]], model: Any, workload: Workload, kind: ModelKind
) -> Route[Target]:
    """The route for the requested model or route name (or the workload's default)."""
    if model is None:
        model = workload.default_model
        if model is None:
            raise InvalidRequest("'model' is required", code="missing_required_parameter", param="model")
    route = routes.get(model) if isinstance(model, str) else None
    if route is None:
        raise NotFound(
            f"The model {model!r} does not exist on this gateway; available: {', '.join(sorted(routes))}",
            param="model",
        )
    wrong = next((t for t in route.targets if t.kind != kind), None)
    if wrong is not None:
        raise InvalidRequest(
            f"model {model!r} is served by {wrong.kind} model {wrong.public_model!r} and cannot serve {kind} requests",
            code="wrong_model_kind",
            param="model",
        )
    return route
