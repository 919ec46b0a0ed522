"""Regenerate ``catalog/data/capacity_grid.json`` with NVIDIA's aiconfigurator-core (the estimated tier).

Run it in a venv holding the ``capacity-grid`` extra (aiconfigurator-core, CPU-only, ~80 MB)::

    python -m venv /tmp/aicvenv && /tmp/aicvenv/bin/pip install -c constraints.txt 'aiconfigurator-core==0.12.0'
    /tmp/aicvenv/bin/python bench/capacity_grid.py            # writes src/modelyard/catalog/data/capacity_grid.json
    /tmp/aicvenv/bin/python bench/capacity_grid.py --only H100-SXM-80GB --out /tmp/grid.json

It never touches the network: models come from aiconfigurator's bundled Hugging Face configs or from a
config.json written here (Qwen2.5-7B-Instruct, which it does not bundle), and ``HF_HUB_OFFLINE`` is set.

For each deployment (model, GPU, quantization, tensor-parallel GPU count) and each (input, output) token
shape of a log-spaced grid, it runs aiconfigurator's aggregated (continuous batching, chunked prefill)
model for TensorRT-LLM at every batch size of aiconfigurator's own sweep, and at each batch size the
context-token budget per step of its own sweep, exactly as its CLI does (``find_best_agg_result_under
_constraints``) but keeping every batch size instead of only the best. Per batch size it keeps the row
with the most output tokens/s (of the rows within 2% of that, the lowest TTFT: a near-free latency gain).
It stores a subset of batch sizes (about √2 apart) plus the largest that fits in memory: throughput is
highest there, and that is where the KV cache bounds the batch.

Figures are aiconfigurator's MEANS (TTFT, TPOT, request latency); ``catalog/estimate.py`` maps them onto
p95 objectives.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: every model path below is bundled or local

OUT = Path(__file__).resolve().parents[1] / "src/modelyard/catalog/data/capacity_grid.json"
ISL = [128, 256, 512, 1024, 2048, 4096, 8192, 16384]
OSL = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
#: aiconfigurator's own batch-size sweep (``find_best_agg_result_under_constraints``), to 1024.
SWEEP = [
    *range(1, 16),
    *range(16, 32, 4),
    *range(32, 64, 8),
    *range(64, 256, 16),
    *range(256, 512, 32),
    512,
    768,
    1024,
]
#: Batch sizes kept in the grid (about √2 apart), plus the largest that fits.
KEEP = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 176, 256, 352, 512, 768, 1024}
BACKEND = "trtllm"

# Qwen/Qwen2.5-7B-Instruct config.json (Hugging Face), the fields aiconfigurator reads.
QWEN25_7B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "hidden_act": "silu",
}

# (our GPU name, aiconfigurator system)
GPUS = [
    ("H100-SXM-80GB", "h100_sxm"),
    ("H200-SXM-141GB", "h200_sxm"),
    ("A100-SXM-80GB", "a100_sxm"),
    ("L40S-48GB", "l40s"),
    ("B200-SXM-180GB", "b200_sxm"),
]
#: Hopper/Ada/Blackwell have FP8 tensor cores; Ampere (A100) does not.
FP8_SYSTEMS = {"h100_sxm", "h200_sxm", "l40s", "b200_sxm"}


@dataclass(frozen=True)
class Model:
    names: list[str]  # our catalog names sharing this architecture
    aic_path: str  # a bundled HF id, or "qwen25-7b" for the config written above
    plans: list[tuple[str, int]]  # (quantization, tensor-parallel GPU count)


MODELS = [
    Model(["Llama-3.1-8B-Instruct"], "meta-llama/Meta-Llama-3.1-8B", [("bf16", 1), ("fp8", 1)]),
    Model(["Qwen2.5-7B-Instruct"], "qwen25-7b", [("bf16", 1), ("fp8", 1)]),
    Model(
        ["Llama-3.1-70B-Instruct", "Llama-3.3-70B-Instruct"],
        "meta-llama/Meta-Llama-3.1-70B",
        [("fp8", 1), ("fp8", 2), ("bf16", 2), ("bf16", 4), ("fp8", 4)],
    ),
]


def _sig(x: float) -> float:
    """Four significant digits: the estimator is not more precise than that."""
    return float(f"{x:.4g}")


class Aic:
    """The few aiconfigurator-core calls this script makes (imported lazily: an optional extra)."""

    def __init__(self, workdir: Path) -> None:
        logging.disable(logging.WARNING)
        from aiconfigurator_core.sdk import common
        from aiconfigurator_core.sdk.backends.factory import get_backend
        from aiconfigurator_core.sdk.config import ModelConfig, RuntimeConfig
        from aiconfigurator_core.sdk.models import get_model
        from aiconfigurator_core.sdk.perf_database import get_database, get_latest_database_version

        self.common, self.get_backend, self.get_model = common, get_backend, get_model
        self.ModelConfig, self.RuntimeConfig = ModelConfig, RuntimeConfig
        self.get_database, self.latest = get_database, get_latest_database_version
        qwen = workdir / "qwen25-7b"
        qwen.mkdir(exist_ok=True)
        (qwen / "config.json").write_text(json.dumps(QWEN25_7B))
        self.paths = {"qwen25-7b": str(qwen)}

    def model_path(self, aic_path: str) -> str:
        path = self.paths.get(aic_path, aic_path)
        if not os.path.isdir(path) and path not in self.common.DefaultHFModels:
            raise SystemExit(f"{path}: not bundled with aiconfigurator and not local; refusing to download")
        return path

    def database(self, system: str) -> tuple[Any, str]:
        version = self.latest(system, BACKEND)
        return self.get_database(system, BACKEND, version), version

    def build(self, aic_path: str, quantization: str, tp: int) -> tuple[Any, Any]:
        q = self.common
        if quantization == "fp8":  # TensorRT-LLM's FP8 recipe: FP8 weights, FP8 KV cache, FP8 attention
            modes = (q.GEMMQuantMode.fp8, q.KVCacheQuantMode.fp8, q.FMHAQuantMode.fp8)
        else:
            modes = (q.GEMMQuantMode.bfloat16, q.KVCacheQuantMode.bfloat16, q.FMHAQuantMode.bfloat16)
        config = self.ModelConfig(
            tp_size=tp, gemm_quant_mode=modes[0], kvcache_quant_mode=modes[1], fmha_quant_mode=modes[2]
        )
        return self.get_model(self.model_path(aic_path), config, BACKEND), self.get_backend(BACKEND)

    def levels(self, model: Any, backend: Any, db: Any, isl: int, osl: int) -> list[list[float]]:
        """[[batch, output tok/s per replica, TTFT ms, TPOT ms, request latency ms], ...] (means)."""
        ctx_list = backend._get_ctx_tokens_list_for_agg_sweep(isl, 512, False)
        best: dict[int, dict[str, float]] = {}
        for b in SWEEP:
            rows = []
            for ctx in ctx_list:
                # aiconfigurator's own guards: a step's prefill never exceeds the batch's prompts, and at
                # least one request is decoding when b > 1.
                if b - math.ceil(ctx / isl) < 0 or (b > 1 and b - math.ceil(ctx / isl) < 1):
                    break
                runtime = self.RuntimeConfig(batch_size=b, isl=isl, osl=osl, ttft=1e12, tpot=1e12)
                summary = backend.run_agg(model=model, database=db, runtime_config=runtime, ctx_tokens=ctx)
                if summary.check_oom() or summary.check_kv_cache_oom():
                    break
                if result := summary.get_result_dict():
                    rows.append(result)
            if not rows:
                break  # memory bounds the batch: larger ones do not fit either
            top = max(r["tokens/s"] for r in rows)
            best[b] = min((r for r in rows if r["tokens/s"] >= 0.98 * top), key=lambda r: r["ttft"])
        if not best:
            return []
        largest = max(best)
        return [
            [b, _sig(r["tokens/s"]), _sig(r["ttft"]), _sig(r["tpot"]), _sig(r["request_latency"])]
            for b, r in sorted(best.items())
            if b in KEEP or b == largest
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", help="one GPU name (e.g. H100-SXM-80GB), for a quick partial grid")
    args = parser.parse_args()
    tool = importlib.metadata.version("aiconfigurator-core")
    started = time.monotonic()
    deployments = []
    with tempfile.TemporaryDirectory() as workdir:
        aic = Aic(Path(workdir))
        for gpu, system in GPUS:
            if args.only and gpu != args.only:
                continue
            db, version = aic.database(system)
            for m in MODELS:
                for quantization, tp in m.plans:
                    if quantization == "fp8" and system not in FP8_SYSTEMS:
                        continue
                    t0 = time.monotonic()
                    model, backend = aic.build(m.aic_path, quantization, tp)
                    shapes = {}
                    for isl in ISL:
                        for osl in OSL:
                            if levels := aic.levels(model, backend, db, isl, osl):
                                shapes[f"{isl}x{osl}"] = levels
                    took = time.monotonic() - t0
                    print(f"{gpu} {m.names[0]} {quantization} tp{tp}: {len(shapes)} shapes, {took:.0f}s")
                    if not shapes:
                        continue  # the weights do not fit
                    deployments.append(
                        {
                            "models": m.names,
                            "gpu": gpu,
                            "gpu_count": tp,
                            "tensor_parallel": tp,
                            "quantization": quantization,
                            "engine": f"TensorRT-LLM {version}",
                            "source": f"aiconfigurator-core {tool}, TensorRT-LLM {version} perf data, {system}",
                            "shapes": shapes,
                        }
                    )
                    sys.stdout.flush()
    grid = {
        "tool": f"aiconfigurator-core {tool}",
        "generated": date.today().isoformat(),
        "command": "python bench/capacity_grid.py",
        "mode": "aggregated (continuous batching), TensorRT-LLM, means",
        "isl": ISL,
        "osl": OSL,
        "columns": ["concurrency", "output_tokens_per_s", "ttft_ms", "tpot_ms", "e2e_ms"],
        "deployments": deployments,
    }
    args.out.write_text(json.dumps(grid, separators=(",", ":")) + "\n")
    size = args.out.stat().st_size
    print(
        f"wrote {args.out}: {len(deployments)} deployments, {size / 1e6:.2f} MB, {time.monotonic() - started:.0f}s"
    )


if __name__ == "__main__":
    main()
