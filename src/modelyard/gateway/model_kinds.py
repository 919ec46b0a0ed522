"""A model's kind (chat or embedding): what the config says, else what the price catalog implies.

A config that lists ``text-embedding-3-small`` without ``kind: embedding`` used to serve it as a chat model
(and refuse embeddings with a message that did not say what to change). The catalog already knows better:
its embedding entries bill input tokens only (output rate 0, as ``data/prices.yaml`` documents). So:

- the config's ``kind`` wins when it is written (pydantic's ``model_fields_set`` tells written from default);
- else a provider kind that only embeds (the in-process model) makes it an embedding model;
- else a catalog entry with an output rate of 0 makes it an embedding model;
- else it is a chat model (the config's default).

A written kind the catalog disagrees with is served as written, and ``modelyard check`` warns about it.
"""

from __future__ import annotations

from modelyard.catalog.price_types import ModelPrice, PriceCatalog
from modelyard.config.kinds import KINDS
from modelyard.config.schema import Config, ModelConfig, ModelKind


def catalog_kind(price: ModelPrice | None) -> ModelKind | None:
    """The kind a catalog entry implies: embedding models bill no output tokens. None: no entry."""
    if price is None:
        return None
    return "embedding" if price.rates.output == 0 else "chat"


def kind_is_written(model: ModelConfig) -> bool:
    return "kind" in model.model_fields_set


def _price(config: Config, name: str, catalog: PriceCatalog) -> ModelPrice | None:
    model = config.models[name]
    provider_kind = config.providers[model.provider].kind
    return catalog.price_for(provider_kind, model.price_as or model.upstream_model or name)


def resolved_kind(config: Config, name: str, catalog: PriceCatalog) -> ModelKind:
    """The kind the gateway serves public model ``name`` as (rules in the module docstring)."""
    model = config.models[name]
    if kind_is_written(model):
        return model.kind
    if KINDS[config.providers[model.provider].kind].embeddings_only:
        return "embedding"
    return catalog_kind(_price(config, name, catalog)) or model.kind


def kind_conflicts(config: Config, catalog: PriceCatalog) -> list[str]:
    """One warning per model whose written kind the catalog contradicts (served as written)."""
    lines = []
    for name, model in sorted(config.models.items()):
        if not kind_is_written(model):
            continue
        implied = catalog_kind(_price(config, name, catalog))
        if implied is not None and implied != model.kind:
            lines.append(
                f"models.{name}.kind is '{model.kind}' but the price catalog lists "
                f"'{model.price_as or model.upstream_model or name}' as a {implied} model; it is served as "
                f"{model.kind} (the config wins): remove the line or set 'kind: {implied}' if that is a mistake"
            )
    return lines
