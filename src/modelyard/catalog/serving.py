"""Open-model serving profiles: throughput and latency of (model, engine, GPU, quantization) by concurrency.

Every profile says where it came from (``source``):

- ``measured``: written by ``modelyard benchmark`` as JSON files in the profiles directory (one per run);
- ``published``: cited figures bundled in ``data/serving_profiles.yaml`` (with reference and date);
- ``estimated``: a memory-bandwidth roofline (:func:`roofline_profile`), used only when nothing better exists.

:func:`best_profile` picks measured over published over estimated, newest first.
"""

from __future__ import annotations

import math
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.catalog.gpus import GpuSpec
from modelyard.config.loader import format_validation_error
from modelyard.errors import ConfigError

Source = Literal["measured", "published", "estimated"]
_RANK: dict[str, int] = {"measured": 0, "published": 1, "estimated": 2}
#: Bytes per weight for each quantization the roofline knows.
BYTES_PER_PARAM: dict[str, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "awq-int4": 0.5,
    "int4": 0.5,
}
#: Share of datasheet bandwidth assumed reachable in decode (conservative; tuned engines report more).
ROOFLINE_EFFICIENCY = 0.6
#: Prompt tokens processed per engine step when prefill is chunked (vLLM's default order of magnitude).
PREFILL_CHUNK = 512


_T = TypeVar("_T", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def best_profile(
    profiles: list[ServingProfile], model: str, gpu: str, gpu_count: int, quantization: str
) -> ServingProfile | None:
    """The most trustworthy, then newest, profile for this deployment; ``None`` if there is none."""
    matches = [
        p
        for p in profiles
        if p.model == model and p.gpu == gpu and p.gpu_count == gpu_count and p.quantization == quantization
    ]
    if not matches:
        return None
    return min(matches, key=lambda p: (_RANK[p.source], -p.date.toordinal()))


def roofline_profile(
    arch: ModelArch, gpu: GpuSpec, gpu_count: int, quantization: str, workload: Workload, today: date
) -> ServingProfile | None:
    """A decode-is-memory-bound estimate; ``None`` when the weights do not fit in GPU memory.

    Each decode step reads all weights once plus every running sequence's KV cache, so a step of batch B
    takes ``(weights + B·kv·ctx) / (bandwidth·efficiency)`` and yields B tokens. Batch is capped by the
    memory left for KV cache. Prefill is charged as one step per ``PREFILL_CHUNK`` prompt tokens.
    """
    if quantization not in BYTES_PER_PARAM:
        raise ConfigError(f"unknown quantization '{quantization}'; known: {', '.join(BYTES_PER_PARAM)}")
    weights = arch.params_b * 1e9 * BYTES_PER_PARAM[quantization]
    memory = gpu.memory_gb * 1e9 * gpu_count * 0.9  # engines reserve ~10% for activations
    context = workload.input_tokens_mean + workload.output_tokens_mean
    kv_per_seq = arch.kv_bytes_per_token * max(context, 1.0)
    max_batch = int((memory - weights) // kv_per_seq) if memory > weights else 0
    if max_batch < 1:
        return None
    bandwidth = gpu.bandwidth_gb_s * 1e9 * gpu_count * ROOFLINE_EFFICIENCY
    avg_ctx = workload.input_tokens_mean + workload.output_tokens_mean / 2
    levels = []
    batch = 1
    while batch <= min(max_batch, 256):
        step_s = (weights + batch * arch.kv_bytes_per_token * avg_ctx) / bandwidth
        ttft_ms = step_s * 1000 * max(1, math.ceil(workload.input_tokens_mean * batch / PREFILL_CHUNK))
        e2e_ms = ttft_ms + step_s * 1000 * workload.output_tokens_mean
        levels.append(
            Level(
                concurrency=batch,
                requests_per_s=batch / (e2e_ms / 1000),
                # Sustained rate over whole requests (prefill included), not the decode-only peak.
                output_tokens_per_s=batch * workload.output_tokens_mean / (e2e_ms / 1000),
                ttft_p50_ms=ttft_ms,
                ttft_p95_ms=ttft_ms,
                ttft_p99_ms=ttft_ms,
                itl_p50_ms=step_s * 1000,
                itl_p99_ms=step_s * 1000,
                e2e_p50_ms=e2e_ms,
                e2e_p95_ms=e2e_ms,
            )
        )
        batch *= 2
    return ServingProfile(
        model=arch.name,
        engine="roofline",
        gpu=gpu.name,
        gpu_count=gpu_count,
        quantization=quantization,
        date=today,
        source="estimated",
        reference=(
            f"roofline: {arch.params_b}B params at {BYTES_PER_PARAM[quantization]} B/param, "
            f"{arch.kv_bytes_per_token} B KV/token, {gpu.bandwidth_gb_s:g} GB/s x{gpu_count} "
            f"at {ROOFLINE_EFFICIENCY:.0%} efficiency"
        ),
        workload=workload,
        levels=levels,
    )
