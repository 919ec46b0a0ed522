"""The model table: every public name's target (provider adapter, upstream model, price) and route.

Built once at start-up from the config and the price catalog, so admitting a request
(:mod:`modelyard.gateway.admission`) is a few dictionary look-ups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelyard.catalog.prices import ModelPrice, PriceCatalog
from modelyard.config.schema import Config, ModelKind
from modelyard.gateway.model_kinds import resolved_kind
from modelyard.providers.base import Adapter
from modelyard.routing.plan import Route


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
            kind=resolved_kind(config, name, catalog),
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
