"""The last-resort capacity estimate: a roofline of continuous batching, from datasheet figures only.

Used only when no measured, published or estimator-grid profile covers a deployment (e.g. L4, A10G). The
model, per replica of ``gpu_count`` GPUs serving requests of ``isl`` prompt and ``osl`` output tokens:

- **Memory bounds the batch.** Engines keep ~10% of GPU memory for activations and workspace
  (``ACTIVATION_SHARE``); the rest, after the weights, holds the KV cache. Each running sequence may grow to
  ``isl + osl`` tokens, so ``max_batch = (0.9·memory − weights) ÷ (kv_bytes_per_token · (isl + osl))``.
  ``None`` when the weights (or even one sequence) do not fit. KV is counted at 16 bits whatever the weight
  quantization: engines keep a 16-bit KV cache unless told otherwise.
- **Prefill and decode overlap.** With chunked prefill one engine step carries every running sequence's
  next token plus a chunk of waiting prompts. In steady state, B sequences finishing ``osl`` tokens each
  bring ``isl`` prompt tokens per ``osl`` steps, so a step processes ``B·(1 + isl/osl)`` tokens. It takes
  the longer of reading the weights and the batch's KV cache (context ``isl + osl/2`` on average) at
  ``ROOFLINE_EFFICIENCY`` of datasheet bandwidth, and computing ``2·params`` FLOPs per token at the same
  efficiency of an assumed ``FLOP_PER_BYTE × bandwidth`` (the catalog has no FLOPs figure; 150 FLOP/B is
  below every datasheet bf16 ratio in it: A100 ≈ 153, H100 ≈ 295, L4 ≈ 400).
- **A request** waits one step, then its prompt takes ``⌈isl / PREFILL_CHUNK⌉`` steps (TTFT), then ``osl``
  steps; its slot is busy for all of it, so a replica sustains ``B·osl ÷ e2e`` output tokens/s.

Latencies are means; :mod:`modelyard.catalog.percentiles` states how they become p95s.
"""

from __future__ import annotations

import math
from datetime import date

from modelyard.catalog.gpus import GpuSpec
from modelyard.catalog.percentiles import RULE, level_from_means
from modelyard.catalog.serving import ModelArch, ServingProfile, Workload
from modelyard.errors import ConfigError

#: Bytes per weight for each quantization the roofline knows.
BYTES_PER_PARAM: dict[str, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "awq-int4": 0.5,
    "int4": 0.5,
}
#: Share of datasheet bandwidth (and of the assumed FLOPs) reached in practice (conservative).
ROOFLINE_EFFICIENCY = 0.6
#: Share of GPU memory engines keep for activations and workspace.
ACTIVATION_SHARE = 0.1
#: Assumed dense FLOPs per byte of bandwidth (see the module docstring).
FLOP_PER_BYTE = 150.0
#: Prompt tokens per engine step for one request under chunked prefill (vLLM's order of magnitude).
PREFILL_CHUNK = 512
#: Largest batch reported (engines' default caps are 256-1024).
MAX_BATCH = 1024


def max_batch(arch: ModelArch, gpu: GpuSpec, gpu_count: int, quantization: str, workload: Workload) -> int:
    """Sequences of this shape whose KV cache fits beside the weights (0: not even one)."""
    weights = arch.params_b * 1e9 * _bytes_per_param(quantization)
    memory = gpu.memory_gb * 1e9 * gpu_count * (1 - ACTIVATION_SHARE)
    per_seq = arch.kv_bytes_per_token * max(workload.input_tokens_mean + workload.output_tokens_mean, 1.0)
    return max(int((memory - weights) // per_seq), 0)


def step_seconds(
    arch: ModelArch, gpu: GpuSpec, gpu_count: int, quantization: str, workload: Workload, batch: int
) -> float:
    """One engine step of ``batch`` decoding sequences plus their share of prefill: memory or compute bound."""
    isl, osl = workload.input_tokens_mean, workload.output_tokens_mean
    bandwidth = gpu.bandwidth_gb_s * 1e9 * gpu_count * ROOFLINE_EFFICIENCY
    weights = arch.params_b * 1e9 * _bytes_per_param(quantization)
    memory_s = (weights + batch * arch.kv_bytes_per_token * (isl + osl / 2)) / bandwidth
    tokens = batch * (1 + isl / osl)
    compute_s = 2 * arch.params_b * 1e9 * tokens / (bandwidth * FLOP_PER_BYTE)
    return max(memory_s, compute_s)


def roofline_profile(
    arch: ModelArch, gpu: GpuSpec, gpu_count: int, quantization: str, workload: Workload, today: date
) -> ServingProfile | None:
    """Levels at batch 1, 2, 4, … and the largest batch memory allows; ``None`` when nothing fits."""
    largest = min(max_batch(arch, gpu, gpu_count, quantization, workload), MAX_BATCH)
    if largest < 1:
        return None
    batches = [b for b in (2**i for i in range(11)) if b < largest] + [largest]
    isl, osl = workload.input_tokens_mean, workload.output_tokens_mean
    levels = []
    for batch in batches:
        step_ms = 1000 * step_seconds(arch, gpu, gpu_count, quantization, workload, batch)
        ttft_ms = step_ms * (1 + math.ceil(isl / PREFILL_CHUNK))
        e2e_s = (ttft_ms + step_ms * osl) / 1000
        levels.append(level_from_means(batch, batch * osl / e2e_s, ttft_ms, step_ms, osl))
    return ServingProfile(
        model=arch.name,
        engine="roofline",
        gpu=gpu.name,
        gpu_count=gpu_count,
        quantization=quantization,
        date=today,
        source="estimated",
        reference=(
            f"last-resort roofline (no measured, published or estimator data for this GPU): "
            f"{arch.params_b}B params at {_bytes_per_param(quantization)} B/param, "
            f"{arch.kv_bytes_per_token} B KV/token, {gpu.bandwidth_gb_s:g} GB/s x{gpu_count} at "
            f"{ROOFLINE_EFFICIENCY:.0%}, prefill overlapping decode, batch <= {largest} by KV-cache memory; "
            f"{RULE}"
        ),
        workload=workload,
        levels=levels,
    )


def _bytes_per_param(quantization: str) -> float:
    if quantization not in BYTES_PER_PARAM:
        raise ConfigError(f"unknown quantization '{quantization}'; known: {', '.join(BYTES_PER_PARAM)}")
    return BYTES_PER_PARAM[quantization]
