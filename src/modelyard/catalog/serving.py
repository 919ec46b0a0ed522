"""Open-model serving profiles: throughput and latency of (model, engine, GPU, quantization) by concurrency.

Every profile says where it came from (``source``):

- ``measured``: written by ``modelyard benchmark`` as JSON files in the profiles directory (one per run);
- ``published``: cited figures bundled in ``data/serving_profiles.yaml`` (with reference and date);
- ``estimated``: the aiconfigurator-core grid (:mod:`modelyard.catalog.estimate`), else a roofline
  (:mod:`modelyard.catalog.roofline`), used only when nothing better exists.

:mod:`modelyard.economics.throughput` picks measured over published over estimated, newest first, and
moves a profile measured at another token shape to the workload's.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import yaml
from pydantic import BaseModel, Field, ValidationError

from modelyard.config.loader import format_validation_error
from modelyard.config.strict import Strict as _Strict
from modelyard.errors import ConfigError

Source = Literal["measured", "published", "estimated"]


_T = TypeVar("_T", bound=BaseModel)


class Workload(_Strict):
    input_tokens_mean: float = Field(ge=0)
    output_tokens_mean: float = Field(gt=0)


class Slo(_Strict):
    ttft_ms: float | None = None
    e2e_ms: float | None = None


class Level(_Strict):
    """One concurrency level of a sweep. Latency fields are ``None`` when the source did not publish them."""

    concurrency: int = Field(ge=1)
    request_rate: float | None = None
    requests_per_s: float = Field(ge=0)
    output_tokens_per_s: float = Field(gt=0)
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    ttft_p99_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p95_ms: float | None = None
    error_rate: float = Field(0.0, ge=0, le=1)
    goodput: float | None = None


class Knee(_Strict):
    concurrency: int
    output_tokens_per_s: float
    requests_per_s: float


class ServingProfile(_Strict):
    model: str
    engine: str
    gpu: str
    gpu_count: int = Field(ge=1)
    quantization: str
    date: date
    source: Source
    #: Citation for published figures, or how an estimate was made.
    reference: str | None = None
    workload: Workload
    slo: Slo = Slo()
    levels: list[Level] = Field(min_length=1)
    knee: Knee | None = None


class ModelArch(_Strict):
    """What the roofline needs: parameter count and KV-cache bytes per token (at 16-bit)."""

    name: str
    params_b: float = Field(gt=0)
    kv_bytes_per_token: int = Field(gt=0)
    source: str


class ServingCatalog(_Strict):
    version: str
    models: list[ModelArch]
    profiles: list[ServingProfile]

    def arch(self, model: str) -> ModelArch | None:
        return next((m for m in self.models if m.name == model), None)


def load_serving_catalog(profiles_dir: str | Path | None = None) -> ServingCatalog:
    """Bundled published profiles plus every measured profile JSON in ``profiles_dir`` (if it exists)."""
    text = (
        resources.files("modelyard.catalog")
        .joinpath("data/serving_profiles.yaml")
        .read_text(encoding="utf-8")
    )
    catalog = _validate(ServingCatalog, yaml.safe_load(text), "bundled serving_profiles.yaml")
    measured = read_profiles_dir(profiles_dir) if profiles_dir is not None else []
    return catalog.model_copy(update={"profiles": [*catalog.profiles, *measured]})


def read_profiles_dir(directory: str | Path) -> list[ServingProfile]:
    """Every ``*.json`` profile in ``directory`` (none if it does not exist); errors name file and field."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    profiles = []
    for path in sorted(directory.glob("*.json")):
        try:
            raw = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable JSON serving profile: {exc}") from None
        profiles.append(_validate(ServingProfile, raw, str(path)))
    return profiles


def _validate(cls: type[_T], raw: Any, source: str) -> _T:
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
