"""Estimated tier vs published figures: prints the table that docs/capacity.md quotes.

    .venv/bin/python bench/capacity_accuracy.py

1. At no latency limit (the best level), the estimated output tokens/s per GPU against TensorRT-LLM's
   published max-throughput figures (tests/fixtures/capacity/published_max_throughput.json), with the
   last-resort roofline beside it for scale.
2. Under TTFT <= 1 s and TPOT <= 50 ms read on the MEANS (aiconfigurator's own CLI reading), and under the
   same limits read as p95s through the conservative rule (what ``decide`` uses), for the shapes issue 14
   quotes aiconfigurator at (Llama-3.1-8B bf16 on one H100: ~3,600 at 2,500/500, ~9,600 at 500/200).
3. What a lookup costs: the grid's first load, and one interpolated profile.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

from modelyard.catalog.estimate import best_level, estimated_profile, load_grid
from modelyard.catalog.gpus import load_gpu_catalog
from modelyard.catalog.percentiles import TPOT_P95_PER_MEAN
from modelyard.catalog.roofline import roofline_profile
from modelyard.catalog.serving import ServingProfile, Workload, load_serving_catalog

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/capacity/published_max_throughput.json"
TODAY = date(2026, 12, 1)


def _shape(isl: float, osl: float) -> Workload:
    return Workload(input_tokens_mean=isl, output_tokens_mean=osl)


def published_table() -> None:
    published = json.loads(FIXTURE.read_text())
    serving, gpus = load_serving_catalog(), load_gpu_catalog()
    print("| model | GPUs | quant | in/out | published /GPU | estimated /GPU | error | roofline /GPU |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for r in published["rows"]:
        shape = _shape(r["isl"], r["osl"])
        est = estimated_profile(r["model"], r["gpu"], r["gpu_count"], r["quantization"], shape)
        arch, spec = serving.arch(r["model"]), gpus.spec(r["gpu"])
        roof = (
            roofline_profile(arch, spec, r["gpu_count"], r["quantization"], shape, TODAY)
            if arch and spec
            else None
        )
        per_gpu = best_level(est).output_tokens_per_s / r["gpu_count"] if est else float("nan")
        roof_gpu = best_level(roof).output_tokens_per_s / r["gpu_count"] if roof else float("nan")
        err = per_gpu / r["per_gpu"] - 1
        print(
            f"| {r['model']} | {r['gpu_count']}x {r['gpu']} | {r['quantization']} | {r['isl']}/{r['osl']} "
            f"| {r['per_gpu']:,} | {per_gpu:,.0f} | {err:+.1%} | {roof_gpu:,.0f} |"
        )


def _best_under(profile: ServingProfile, ttft_ms: float, tpot_ms: float, *, on_p95: bool) -> float:
    """Most tokens/s among levels whose TTFT and TPOT (means, or p95s by the rule) meet the limits."""
    ok = []
    for lvl in profile.levels:
        ttft = (lvl.ttft_p95_ms if on_p95 else lvl.ttft_p50_ms) or 0.0
        tpot = (lvl.itl_p50_ms or 0.0) * (TPOT_P95_PER_MEAN if on_p95 else 1.0)
        if ttft <= ttft_ms and tpot <= tpot_ms:
            ok.append(lvl.output_tokens_per_s)
    return max(ok, default=0.0)


def constrained_table() -> None:
    print("\nLlama-3.1-8B-Instruct bf16, 1x H100-SXM-80GB, TTFT <= 1 s and TPOT <= 50 ms:")
    print("| in/out | issue 14's aiconfigurator run | grid, limits on means | grid, limits on p95 (decide) |")
    print("|---|---:|---:|---:|")
    for isl, osl, quoted in [(2500, 500, 3600), (500, 200, 9600)]:
        profile = estimated_profile("Llama-3.1-8B-Instruct", "H100-SXM-80GB", 1, "bf16", _shape(isl, osl))
        assert profile is not None
        means = _best_under(profile, 1000, 50, on_p95=False)
        p95 = _best_under(profile, 1000, 50, on_p95=True)
        print(f"| {isl}/{osl} | ~{quoted:,} | {means:,.0f} | {p95:,.0f} |")


def lookup_cost() -> None:
    load_grid.cache_clear()
    t0 = time.perf_counter()
    load_grid()
    load_ms = (time.perf_counter() - t0) * 1000
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):  # every shape distinct: no answer comes from the cache
        estimated_profile("Llama-3.1-8B-Instruct", "H100-SXM-80GB", 1, "fp8", _shape(700 + i * 0.5, 300))
    per_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        estimated_profile("Llama-3.1-8B-Instruct", "H100-SXM-80GB", 1, "fp8", _shape(700, 300))
    again_us = (time.perf_counter() - t0) / n * 1e6
    print(f"\ngrid first load: {load_ms:.0f} ms (once per process)")
    print(f"one interpolated profile: {per_us:.0f} µs; the same question again: {again_us:.1f} µs")


if __name__ == "__main__":
    published_table()
    constrained_table()
    lookup_cost()
