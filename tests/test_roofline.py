"""The last-resort roofline: memory bounds the batch, prefill overlaps decode, bandwidth only helps."""

from __future__ import annotations

from datetime import date

import pytest

from modelyard.catalog.gpus import GpuSpec
from modelyard.catalog.percentiles import TTFT_P95_PER_MEAN
from modelyard.catalog.roofline import max_batch, roofline_profile, step_seconds
from modelyard.catalog.serving import ModelArch, ServingProfile, Workload
from modelyard.errors import ConfigError

TODAY = date(2026, 12, 1)
LLAMA_8B = ModelArch(name="Llama-3.1-8B-Instruct", params_b=8.03, kv_bytes_per_token=131072, source="t")
LLAMA_70B = ModelArch(name="Llama-3.1-70B-Instruct", params_b=70.6, kv_bytes_per_token=327680, source="t")


def gpu(memory_gb: float = 80, bandwidth_gb_s: float = 3350) -> GpuSpec:
    return GpuSpec(name="G", memory_gb=memory_gb, bandwidth_gb_s=bandwidth_gb_s, source="t")


def shape(isl: float, osl: float) -> Workload:
    return Workload(input_tokens_mean=isl, output_tokens_mean=osl)


def peak(profile: ServingProfile | None) -> float:
    assert profile is not None
    return max(lvl.output_tokens_per_s for lvl in profile.levels)


@pytest.mark.parametrize(
    ("arch", "memory_gb", "count", "quantization", "isl", "osl", "expected"),
    [
        # (0.9·80 GB − 16.06 GB) ÷ (131,072 B × 3,000 tokens) = 142 sequences
        (LLAMA_8B, 80, 1, "bf16", 2500, 500, 142),
        # FP8 halves the weights: more room for KV cache
        (LLAMA_8B, 80, 1, "fp8", 2500, 500, 162),
        # longer sequences: fewer fit
        (LLAMA_8B, 80, 1, "bf16", 16000, 4000, 21),
        # 141.2 GB of bf16 weights leave 2.8 GB of 0.9 × 2 × 80 GB: four 2,000-token sequences …
        (LLAMA_70B, 80, 2, "bf16", 1000, 1000, 4),
        # … not one of 20,000 tokens (6.6 GB) …
        (LLAMA_70B, 80, 2, "bf16", 16000, 4000, 0),
        # … and 223 on four GPUs
        (LLAMA_70B, 80, 4, "bf16", 1000, 1000, 223),
        # the weights alone do not fit
        (LLAMA_70B, 80, 1, "bf16", 100, 100, 0),
        # the weights fit in 24 GB but not one 128k-token sequence beside them
        (LLAMA_8B, 24, 1, "bf16", 120_000, 8000, 0),
    ],
)
def test_kv_cache_memory_bounds_the_batch(
    arch: ModelArch, memory_gb: float, count: int, quantization: str, isl: float, osl: float, expected: int
) -> None:
    assert max_batch(arch, gpu(memory_gb), count, quantization, shape(isl, osl)) == expected


@pytest.mark.parametrize(
    ("arch", "memory_gb", "count", "quantization", "isl", "osl"),
    [
        (LLAMA_70B, 80, 1, "bf16", 1000, 1000),
        (LLAMA_70B, 80, 2, "bf16", 16000, 4000),
        (LLAMA_70B, 48, 1, "fp8", 100, 100),
        (LLAMA_8B, 24, 1, "bf16", 120_000, 8000),
    ],
)
def test_no_profile_when_nothing_fits(
    arch: ModelArch, memory_gb: float, count: int, quantization: str, isl: float, osl: float
) -> None:
    assert roofline_profile(arch, gpu(memory_gb), count, quantization, shape(isl, osl), TODAY) is None


@pytest.mark.parametrize(("isl", "osl"), [(2500, 500), (500, 200), (1000, 1000), (128, 2048), (8000, 100)])
def test_profile_stops_at_the_largest_batch_that_fits(isl: float, osl: float) -> None:
    profile = roofline_profile(LLAMA_8B, gpu(), 1, "bf16", shape(isl, osl), TODAY)
    assert profile is not None
    largest = max_batch(LLAMA_8B, gpu(), 1, "bf16", shape(isl, osl))
    assert profile.levels[-1].concurrency == min(largest, 1024)
    assert all(lvl.concurrency <= largest for lvl in profile.levels)


@pytest.mark.parametrize(("isl", "osl"), [(2500, 500), (500, 200), (1000, 1000), (128, 2048)])
@pytest.mark.parametrize("quantization", ["bf16", "fp8"])
def test_more_bandwidth_never_lowers_throughput(isl: float, osl: float, quantization: str) -> None:
    figures = [
        peak(roofline_profile(LLAMA_8B, gpu(bandwidth_gb_s=bw), 1, quantization, shape(isl, osl), TODAY))
        for bw in (300, 864, 2039, 3350, 4800)
    ]
    assert figures == sorted(figures)
    assert figures[-1] > figures[0]


@pytest.mark.parametrize(("isl", "osl"), [(2500, 500), (500, 200), (4000, 100)])
def test_prefill_shares_the_step_with_decode(isl: float, osl: float) -> None:
    # A step carries B decode tokens plus B·isl/osl prompt tokens: long prompts make it compute bound,
    # so the step is longer than reading the weights and KV cache alone.
    batch = 64
    step = step_seconds(LLAMA_8B, gpu(), 1, "bf16", shape(isl, osl), batch)
    decode_only = step_seconds(LLAMA_8B, gpu(), 1, "bf16", shape(0, osl), batch)
    assert step > decode_only


def test_latencies_are_means_mapped_to_conservative_percentiles() -> None:
    profile = roofline_profile(LLAMA_8B, gpu(), 1, "bf16", shape(2500, 500), TODAY)
    assert profile is not None
    for lvl in profile.levels:
        assert lvl.ttft_p50_ms is not None and lvl.ttft_p95_ms is not None
        assert lvl.ttft_p95_ms == pytest.approx(TTFT_P95_PER_MEAN * lvl.ttft_p50_ms)
        assert lvl.e2e_p95_ms is not None and lvl.e2e_p50_ms is not None
        assert lvl.e2e_p95_ms > lvl.e2e_p50_ms


def test_labelled_as_the_last_resort_roofline() -> None:
    profile = roofline_profile(LLAMA_8B, gpu(), 1, "bf16", shape(2500, 500), TODAY)
    assert profile is not None
    assert (profile.engine, profile.source) == ("roofline", "estimated")
    assert profile.reference is not None and profile.reference.startswith("last-resort roofline")


def test_unknown_quantization_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: bf16"):
        roofline_profile(LLAMA_8B, gpu(), 1, "nf3", shape(100, 100), TODAY)
