"""Pure parts of the benchmark: percentiles, the throughput window, knee selection, the profile document."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from modelyard.benchmark.client import RequestResult
from modelyard.benchmark.knee import find_knee
from modelyard.benchmark.loadgen import LevelRun, LevelSpec
from modelyard.benchmark.profile import Deployment, build_profile, write_profile
from modelyard.benchmark.stats import LevelStats, Slo, percentile, summarise
from modelyard.benchmark.workload import PromptSynth
from modelyard.catalog.serving import read_profiles_dir


def test_percentile_interpolates_linearly_like_numpy() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_only_tokens_inside_the_issuing_window_count() -> None:
    spec = LevelSpec(concurrency=1)
    s = 10**9  # request times are perf_counter_ns nanoseconds
    # 10 tokens spread over [1, 3] s; the window [0, 2] s holds half of them.
    run = LevelRun(spec, start=0, issue_end=2 * s, results=[
        RequestResult(start=s // 2, end=3 * s, first_token=s, output_tokens=10, input_tokens=5, usage_seen=True),
        RequestResult(start=s // 10, end=s // 5, error="http_500"),
    ])  # fmt: skip
    stats = summarise(run, Slo(ttft_ms=100))
    assert stats.output_tokens_per_s == pytest.approx(5 / 2)
    assert stats.requests_per_s == 0  # the request ended after the window
    assert stats.error_rate == 0.5 and stats.goodput == 0  # TTFT 500 ms misses 100 ms
    assert stats.first_error.startswith("http_500")


def _level(c: int, tok: float, ttft95: float, err: float = 0.0) -> LevelStats:
    return LevelStats(
        concurrency=c, request_rate=None, requests_per_s=tok / 100, output_tokens_per_s=tok,
        ttft_p50_ms=ttft95 / 2, ttft_p95_ms=ttft95, ttft_p99_ms=ttft95, itl_p50_ms=10, itl_p99_ms=20,
        e2e_p50_ms=1000, e2e_p95_ms=1500, error_rate=err, goodput=1 - err, requests=100, errors=int(err * 100),
        input_tokens_mean=500, output_tokens_mean=100, window_s=10, partial=False,
    )  # fmt: skip


SWEEP = [
    _level(1, 100, 20),
    _level(4, 380, 30),
    _level(8, 700, 60),
    _level(16, 720, 400),
    _level(32, 730, 900),
]


@pytest.mark.parametrize(
    ("slo", "expected"),
    [
        (Slo(), 8),  # saturation: 16 and 32 add under 5% for much more latency
        (Slo(ttft_ms=50), 4),  # the objective rules out 8 and beyond
        (Slo(ttft_ms=1000, e2e_ms=2000), 8),
        (Slo(e2e_ms=1000), None),  # every level misses its e2e objective
    ],
)
def test_knee_is_the_least_loaded_level_near_the_best_eligible_throughput(
    slo: Slo, expected: int | None
) -> None:
    knee = find_knee(SWEEP, slo)
    assert (knee.concurrency if knee else None) == expected


def test_levels_with_errors_over_one_percent_are_never_the_knee() -> None:
    sweep = [*SWEEP[:2], replace(SWEEP[2], error_rate=0.05)]
    knee = find_knee(sweep, Slo())
    assert knee is not None and knee.concurrency == 4


def test_calibration_recovers_tokens_per_word_and_template_overhead() -> None:
    synth = PromptSynth.calibrated((24, 152), (24 * 1.3 + 9, 152 * 1.3 + 9))
    assert synth.tokens_per_word == pytest.approx(1.3) and synth.overhead == pytest.approx(9)
    assert synth.words_for(139) == 100


def test_profile_round_trips_through_the_decision_engines_reader(tmp_path: Path) -> None:
    deployment = Deployment("Llama-3.1-8B-Instruct", "vllm-0.9", "H100-80GB", 1, "bf16")
    knee = find_knee(SWEEP, Slo(ttft_ms=50))
    failed = replace(SWEEP[0], concurrency=64, output_tokens_per_s=0.0, errors=100, error_rate=1.0)
    profile = build_profile(deployment, [*SWEEP, failed], knee, Slo(ttft_ms=50), date(2026, 1, 2))
    path = write_profile(profile, tmp_path)
    (read,) = read_profiles_dir(tmp_path)
    assert path.name == "Llama-3.1-8B-Instruct-vllm-0.9-H100-80GBx1-bf16-2026-01-02.json"
    assert read.source == "measured" and read.date == date(2026, 1, 2)
    assert [lv.concurrency for lv in read.levels] == [1, 4, 8, 16, 32]  # the all-errors level is left out
    assert read.knee is not None and read.knee.concurrency == 4
    assert set(profile) == {"model", "engine", "gpu", "gpu_count", "quantization", "date", "source",
                            "workload", "slo", "levels", "knee"}  # fmt: skip
