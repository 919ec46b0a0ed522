"""The estimated tier: aiconfigurator's grid against published figures, interpolation, limits, fallback."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from modelyard.catalog.estimate import best_level, estimate, estimated_profile, parse_grid
from modelyard.catalog.gpus import load_gpu_catalog
from modelyard.catalog.percentiles import TPOT_P95_PER_MEAN, TTFT_P95_PER_MEAN
from modelyard.catalog.serving import ServingProfile, Workload, load_serving_catalog

TODAY = date(2026, 12, 1)
PUBLISHED = json.loads(
    (Path(__file__).parent / "fixtures/capacity/published_max_throughput.json").read_text()
)
H100, L8B = "H100-SXM-80GB", "Llama-3.1-8B-Instruct"


def shape(isl: float, osl: float) -> Workload:
    return Workload(input_tokens_mean=isl, output_tokens_mean=osl)


def bundled(model: str, gpu: str, count: int, quantization: str, isl: float, osl: float) -> ServingProfile:
    profile = estimated_profile(model, gpu, count, quantization, shape(isl, osl))
    assert profile is not None
    return profile


@pytest.mark.parametrize(
    "row", PUBLISHED["rows"], ids=lambda r: f"{r['model']}-{r['gpu']}-{r['isl']}/{r['osl']}"
)
def test_max_throughput_within_tolerance_of_published_trtllm_figures(row: dict[str, Any]) -> None:
    profile = bundled(row["model"], row["gpu"], row["gpu_count"], row["quantization"], row["isl"], row["osl"])
    per_gpu = best_level(profile).output_tokens_per_s / row["gpu_count"]
    assert per_gpu == pytest.approx(row["per_gpu"], rel=PUBLISHED["tolerance"])


@pytest.mark.parametrize(("isl", "osl", "quoted"), [(2500, 500, 3600), (500, 200, 9600)])
def test_grid_agrees_with_aiconfigurators_own_run_under_latency_limits(
    isl: int, osl: int, quoted: int
) -> None:
    # Issue 14 ran aiconfigurator for Llama-3.1-8B bf16 on one H100 under mean TTFT <= 1 s, TPOT <= 50 ms.
    profile = bundled(L8B, H100, 1, "bf16", isl, osl)
    met = [
        lvl.output_tokens_per_s
        for lvl in profile.levels
        if (lvl.ttft_p50_ms or 0) <= 1000 and (lvl.itl_p50_ms or 0) <= 50
    ]
    assert max(met) == pytest.approx(quoted, rel=0.10)


@pytest.mark.parametrize(
    ("model", "gpu", "count", "quantization"),
    [
        (L8B, "L4-24GB", 1, "bf16"),  # aiconfigurator has no L4 perf data
        (L8B, "A10G-24GB", 1, "bf16"),
        (L8B, "A100-40GB", 1, "bf16"),  # only the 80 GB A100 is in its data
        (L8B, "A100-SXM-80GB", 1, "fp8"),  # Ampere has no FP8 tensor cores
        (L8B, H100, 2, "bf16"),  # a GPU count the grid does not cover
        ("Llama-3.1-70B-Instruct", H100, 1, "bf16"),  # 141 GB of weights on 80 GB
    ],
)
def test_no_estimate_without_grid_data(model: str, gpu: str, count: int, quantization: str) -> None:
    assert estimated_profile(model, gpu, count, quantization, shape(1000, 200)) is None


@pytest.mark.parametrize(("gpu", "count"), [("L4-24GB", 1), ("A10G-24GB", 1), ("A100-40GB", 1), (H100, 2)])
def test_gpus_without_estimator_data_fall_back_to_the_labelled_roofline(gpu: str, count: int) -> None:
    serving, gpus = load_serving_catalog(), load_gpu_catalog()
    profile = estimate(serving.arch(L8B), gpus.spec(gpu), L8B, gpu, count, "bf16", shape(1000, 200), TODAY)
    assert profile is not None
    assert (profile.source, profile.engine) == ("estimated", "roofline")
    assert profile.reference is not None and profile.reference.startswith("last-resort roofline")


def test_the_chain_prefers_the_grid_and_says_which_tool_made_it() -> None:
    serving, gpus = load_serving_catalog(), load_gpu_catalog()
    profile = estimate(serving.arch(L8B), gpus.spec(H100), L8B, H100, 1, "fp8", shape(1000, 200), TODAY)
    assert profile is not None
    assert profile.source == "estimated"
    assert profile.engine.startswith("aiconfigurator-core 0.12.0 / TensorRT-LLM")
    assert profile.reference is not None
    for words in ("aiconfigurator-core 0.12.0", "1024/128", "512/256", "TTFT p95 = 3 x mean"):
        assert words in profile.reference


def test_the_chain_ends_in_none_without_grid_or_architecture() -> None:
    assert estimate(None, None, "Mystery-9B", "L4-24GB", 1, "bf16", shape(100, 100), TODAY) is None


@pytest.mark.parametrize(("isl", "osl"), [(20_000, 500), (1000, 5000), (40_000, 8000)])
def test_no_extrapolation_beyond_the_grid(isl: float, osl: float) -> None:
    assert estimated_profile(L8B, H100, 1, "fp8", shape(isl, osl)) is None


def test_a_prompt_shorter_than_the_grid_is_read_at_the_grids_smallest() -> None:
    short, smallest = bundled(L8B, H100, 1, "fp8", 20, 256), bundled(L8B, H100, 1, "fp8", 128, 256)
    assert [lvl.output_tokens_per_s for lvl in short.levels] == [
        lvl.output_tokens_per_s for lvl in smallest.levels
    ]
    assert short.reference is not None and "input 20 read at the grid's smallest, 128" in short.reference


def test_an_output_shorter_than_the_grid_keeps_the_grid_shapes_requests_per_second() -> None:
    short, smallest = bundled(L8B, H100, 1, "fp8", 1024, 4), bundled(L8B, H100, 1, "fp8", 1024, 16)
    for a, b in zip(short.levels, smallest.levels, strict=True):
        assert a.requests_per_s == pytest.approx(b.requests_per_s)
        assert a.output_tokens_per_s == pytest.approx(b.output_tokens_per_s / 4)


@pytest.mark.parametrize("osl", [64, 256, 1000])
def test_longer_prompts_never_raise_throughput(osl: int) -> None:
    peaks = [
        best_level(bundled(L8B, H100, 1, "fp8", isl, osl)).output_tokens_per_s
        for isl in (128, 700, 3000, 12000)
    ]
    assert peaks == sorted(peaks, reverse=True)


def test_llama_3_3_reads_the_llama_3_1_70b_architecture_and_fp16_reads_bf16() -> None:
    a = bundled("Llama-3.3-70B-Instruct", H100, 4, "bf16", 1000, 300)
    b = bundled("Llama-3.1-70B-Instruct", H100, 4, "fp16", 1000, 300)
    assert [lvl.output_tokens_per_s for lvl in a.levels] == [lvl.output_tokens_per_s for lvl in b.levels]
    assert b.reference is not None and "fp16 read as bf16" in b.reference


def test_means_become_p95s_by_the_stated_rule() -> None:
    osl = 300
    for lvl in bundled(L8B, H100, 1, "bf16", 2500, osl).levels:
        assert lvl.ttft_p50_ms is not None and lvl.itl_p50_ms is not None
        assert lvl.ttft_p95_ms == pytest.approx(TTFT_P95_PER_MEAN * lvl.ttft_p50_ms)
        decode = lvl.itl_p50_ms * (osl - 1)
        assert lvl.e2e_p50_ms == pytest.approx(lvl.ttft_p50_ms + decode)
        assert lvl.e2e_p95_ms == pytest.approx(
            TTFT_P95_PER_MEAN * lvl.ttft_p50_ms + TPOT_P95_PER_MEAN * decode
        )
        assert lvl.requests_per_s == pytest.approx(lvl.output_tokens_per_s / osl)


# A two-by-two grid whose figures are easy to check by hand.
def small_grid(missing: str | None = None) -> Any:
    shapes = {
        "100x10": [[1, 100, 10, 1, 19], [2, 150, 10, 1, 19], [4, 200, 20, 2, 38]],
        "100x100": [[1, 400, 10, 1, 109], [2, 600, 10, 1, 109], [8, 1600, 40, 4, 436]],
        "10000x10": [[1, 1, 1000, 1, 1009], [2, 1.5, 1000, 1, 1009], [3, 2, 1000, 1, 1009]],
        "10000x100": [[1, 4, 1000, 1, 1099], [2, 6, 1000, 1, 1099], [4, 16, 1000, 1, 1099]],
    }
    if missing:
        del shapes[missing]
    return parse_grid(
        {
            "tool": "aiconfigurator-core 0.12.0",
            "generated": "2026-12-01",
            "isl": [100, 10000],
            "osl": [10, 100],
            "deployments": [
                {
                    "models": ["M"],
                    "gpu": "G",
                    "gpu_count": 1,
                    "quantization": "bf16",
                    "engine": "TensorRT-LLM x",
                    "source": "aiconfigurator-core 0.12.0, TensorRT-LLM x perf data, g",
                    "shapes": shapes,
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("isl", "osl", "expected"),
    [
        # On a grid shape: its own levels, the largest batch last.
        (100, 100, [(1, 400), (2, 600), (8, 1600)]),
        (10000, 10, [(1, 1), (2, 1.5), (3, 2)]),
        # Half way in log(input): geometric means; the largest batches blend to √(8·4) ≈ 6.
        (1000, 100, [(1, 40), (2, 60), (6, math.sqrt(1600 * 16))]),
        # Half way in log(output) at input 100: √(4·8) ≈ 6 sequences.
        (100, math.sqrt(1000), [(1, 200), (2, 300), (6, math.sqrt(200 * 1600))]),
    ],
)
def test_interpolation_is_geometric_in_log_shape(
    isl: float, osl: float, expected: list[tuple[int, float]]
) -> None:
    profile = estimated_profile("M", "G", 1, "bf16", shape(isl, osl), grid=small_grid())
    assert profile is not None
    got = [(lvl.concurrency, lvl.output_tokens_per_s) for lvl in profile.levels]
    assert [c for c, _ in got] == [c for c, _ in expected]
    assert [t for _, t in got] == pytest.approx([t for _, t in expected])


def test_no_estimate_next_to_a_shape_that_does_not_fit() -> None:
    grid = small_grid(missing="10000x100")
    assert estimated_profile("M", "G", 1, "bf16", shape(1000, 50), grid=grid) is None
    assert estimated_profile("M", "G", 1, "bf16", shape(100, 50), grid=grid) is not None
