"""The serving profile a sweep produces, written where the decision engine's capacity model reads it.

The file follows :class:`modelyard.catalog.serving.ServingProfile` exactly (``source: measured``); the
writer validates it with that very model before writing, so a profile the engine cannot read is never
left on disk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from modelyard.benchmark.knee import Knee
from modelyard.benchmark.stats import LevelStats, Slo

#: The fields of a level the profile keeps, in the profile's order.
LEVEL_FIELDS = (
    "concurrency",
    "request_rate",
    "requests_per_s",
    "output_tokens_per_s",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "itl_p99_ms",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "error_rate",
    "goodput",
)


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the user says the endpoint runs on: the decision engine matches profiles on these labels."""

    model: str
    engine: str
    gpu: str
    gpu_count: int
    quantization: str


def build_profile(
    deployment: Deployment, levels: Sequence[LevelStats], knee: Knee | None, slo: Slo, today: date
) -> dict[str, Any]:
    """The profile document; levels that delivered no tokens are left out (the engine needs throughput)."""
    measured = [lv for lv in levels if lv.output_tokens_per_s > 0 and lv.requests > lv.errors]
    if not measured:
        raise ValueError("no level delivered any tokens: there is nothing to write")
    weights = [lv.requests - lv.errors for lv in measured]
    return {
        "model": deployment.model,
        "engine": deployment.engine,
        "gpu": deployment.gpu,
        "gpu_count": deployment.gpu_count,
        "quantization": deployment.quantization,
        "date": today.isoformat(),
        "source": "measured",
        "workload": {
            "input_tokens_mean": _weighted([lv.input_tokens_mean for lv in measured], weights),
            "output_tokens_mean": _weighted([lv.output_tokens_mean for lv in measured], weights),
        },
        "slo": {"ttft_ms": slo.ttft_ms, "e2e_ms": slo.e2e_ms},
        "levels": [_level(lv) for lv in measured],
        "knee": None
        if knee is None
        else {
            "concurrency": knee.concurrency,
            "output_tokens_per_s": knee.output_tokens_per_s,
            "requests_per_s": knee.requests_per_s,
        },
    }


def _level(level: LevelStats) -> dict[str, Any]:
    row = level.as_dict()
    # A latency nobody measured (no successful request had a second chunk) is 0 rather than NaN, which
    # JSON cannot carry; such a level has no throughput either and is dropped above, except for ITL.
    return {k: (0.0 if isinstance(row[k], float) and math.isnan(row[k]) else row[k]) for k in LEVEL_FIELDS}


def _weighted(values: Sequence[float], weights: Sequence[int]) -> float:
    return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)


def profile_filename(profile: dict[str, Any]) -> str:
    stem = f"{profile['model']}-{profile['engine']}-{profile['gpu']}x{profile['gpu_count']}-{profile['quantization']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}-{profile['date']}") + ".json"


def write_profile(profile: dict[str, Any], directory: str | Path) -> Path:
    """Validate ``profile`` as the decision engine will, then write it into ``directory``."""
    from modelyard.catalog.serving import ServingProfile

    ServingProfile.model_validate(profile)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / profile_filename(profile)
    path.write_bytes(orjson.dumps(profile, option=orjson.OPT_INDENT_2))
    return path
