"""GPU specs and offers: versioned data in ``catalog/data/gpus.yaml``, each figure with its source and date.

An offer is a vendor's price for one GPU-hour of a GPU type, on demand and (when published) reserved or
spot. A pricing mode with no published price is an error at lookup, never a guess.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from modelyard.config.loader import format_validation_error
from modelyard.config.strict import Strict as _Strict
from modelyard.errors import ConfigError

PricingMode = Literal["on_demand", "reserved", "spot"]


class GpuSpec(_Strict):
    """A GPU type's datasheet figures, used by the roofline estimate."""

    name: str
    memory_gb: float = Field(gt=0)
    bandwidth_gb_s: float = Field(gt=0)
    source: str


class GpuOffer(_Strict):
    """One vendor's USD price per GPU-hour."""

    vendor: str
    gpu: str
    on_demand: Decimal = Field(gt=0)
    reserved: Decimal | None = Field(None, gt=0)
    spot: Decimal | None = Field(None, gt=0)
    source: str
    as_of: date

    def hourly(self, mode: PricingMode) -> Decimal:
        """USD per GPU-hour in ``mode``; raises :class:`ConfigError` when the vendor publishes none."""
        price = {"on_demand": self.on_demand, "reserved": self.reserved, "spot": self.spot}[mode]
        if price is None:
            raise ConfigError(
                f"GPU offer {self.vendor}/{self.gpu} has no {mode} price in the catalog; "
                f"use gpu_pricing: on_demand or add a '{mode}' price to a GPU file (catalog.gpu_files)"
            )
        return price

    @property
    def key(self) -> str:
        return f"{self.vendor}/{self.gpu}"


class GpuCatalog(_Strict):
    version: str
    gpus: list[GpuSpec]
    offers: list[GpuOffer]

    def spec(self, name: str) -> GpuSpec | None:
        return next((g for g in self.gpus if g.name == name), None)

    def offer(self, key: str) -> GpuOffer:
        """The offer ``vendor/gpu``; :class:`ConfigError` listing the known ones otherwise."""
        for offer in self.offers:
            if offer.key == key:
                return offer
        known = ", ".join(sorted(o.key for o in self.offers))
        raise ConfigError(f"unknown GPU offer '{key}'; known offers: {known} (or add one in a GPU file)")


def parse_gpu_yaml(raw: Any, *, source: str) -> GpuCatalog:
    """Validate a GPU file's contents; errors name the file and field path."""
    try:
        return GpuCatalog.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_gpu_catalog(extra_files: tuple[str, ...] | list[str] = ()) -> GpuCatalog:
    """The bundled GPU catalog with ``extra_files`` layered over it (same vendor/gpu replaces)."""
    text = resources.files("modelyard.catalog").joinpath("data/gpus.yaml").read_text(encoding="utf-8")
    catalog = parse_gpu_yaml(yaml.safe_load(text), source="bundled gpus.yaml")
    for path in extra_files:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read GPU file {path}: {exc}") from None
        layer = parse_gpu_yaml(raw, source=str(path))
        specs = {g.name: g for g in catalog.gpus} | {g.name: g for g in layer.gpus}
        offers = {o.key: o for o in catalog.offers} | {o.key: o for o in layer.offers}
        catalog = GpuCatalog(
            version=f"{catalog.version}+{Path(path).name}",
            gpus=list(specs.values()),
            offers=list(offers.values()),
        )
    return catalog
