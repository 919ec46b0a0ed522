"""Which profile sizes a self-hosted option: measured > published > estimated, at the workload's shape."""

from __future__ import annotations

from datetime import date

import pytest

from modelyard.catalog.serving import Level, ServingProfile, Workload
from modelyard.economics.throughput import candidates, near, profile_for, scale

DAY = date(2026, 1, 1)


def _profile(source: str, isl: float, osl: float, tokens: list[float], when: date = DAY) -> ServingProfile:
    return ServingProfile(
        model="m", engine=f"{source}-engine", gpu="g", gpu_count=1, quantization="bf16", date=when,
        source=source,  # type: ignore[arg-type]
        reference=f"{source} ref", workload=Workload(input_tokens_mean=isl, output_tokens_mean=osl),
        levels=[
            Level(concurrency=2**i, requests_per_s=t / osl, output_tokens_per_s=t, ttft_p95_ms=100.0 * (i + 1))
            for i, t in enumerate(tokens)
        ],
    )  # fmt: skip


def _estimator(table: dict[tuple[float, float], ServingProfile]):  # type: ignore[no-untyped-def]
    def estimate(at: Workload) -> ServingProfile | None:
        return table.get((at.input_tokens_mean, at.output_tokens_mean))

    return estimate


@pytest.mark.parametrize(
    ("a", "b", "is_near"),
    [
        ((1000, 200), (1200, 240), True),
        ((1000, 200), (1300, 200), False),
        ((1024, 128), (2500, 500), False),
        ((1000, 20), (1000, 30), True),
    ],
)
def test_near_means_each_length_within_a_quarter(
    a: tuple[int, int], b: tuple[int, int], is_near: bool
) -> None:
    wa = Workload(input_tokens_mean=a[0], output_tokens_mean=a[1])
    wb = Workload(input_tokens_mean=b[0], output_tokens_mean=b[1])
    assert near(wa, wb) is is_near


def test_a_profile_near_the_shape_is_used_as_it_is() -> None:
    published = _profile("published", 1000, 200, [100, 180])
    shape = Workload(input_tokens_mean=1100, output_tokens_mean=210)
    assert profile_for([published], shape, _estimator({})) is published


def test_a_profile_far_from_the_shape_is_scaled_by_the_estimators_ratio_and_says_so() -> None:
    published = _profile("published", 1024, 128, [75, 495])
    there = _profile("estimated", 1024, 128, [80, 500])
    here = _profile(
        "estimated", 2500, 500, [40, 250]
    )  # the estimator halves tokens/s at the workload's shape
    shape = Workload(input_tokens_mean=2500, output_tokens_mean=500)
    got = profile_for([published], shape, _estimator({(1024, 128): there, (2500, 500): here}))
    assert got is not None and got.source == "published"
    assert [lv.output_tokens_per_s for lv in got.levels] == pytest.approx([37.5, 247.5])
    assert [lv.requests_per_s for lv in got.levels] == pytest.approx([37.5 / 500, 247.5 / 500])
    assert got.reference is not None and got.reference.startswith(
        "scaled from 1,024 in / 128 out to 2,500 / 500"
    )
    assert "published ref" in got.reference
    # Latencies move by the estimator's own ratio too (here unchanged: 100 ms → 100 ms).
    assert got.levels[0].ttft_p95_ms == pytest.approx(100.0)


def test_without_an_estimate_at_both_shapes_the_far_profile_is_not_used() -> None:
    published = _profile("published", 1024, 128, [75, 495])
    here = _profile("estimated", 2500, 500, [40, 250])
    shape = Workload(input_tokens_mean=2500, output_tokens_mean=500)
    assert profile_for([published], shape, _estimator({(2500, 500): here})) is here
    assert profile_for([published], shape, _estimator({})) is None


def test_measured_beats_published_and_newer_beats_older() -> None:
    old = _profile("measured", 1000, 200, [1], date(2025, 1, 1))
    new = _profile("measured", 1000, 200, [2], date(2026, 6, 1))
    pub = _profile("published", 1000, 200, [3], date(2026, 11, 1))
    assert candidates([pub, old, new], "m", "g", 1, "bf16") == [new, old, pub]
    assert candidates([pub], "m", "other-gpu", 1, "bf16") == []


def test_scaling_keeps_missing_latencies_missing() -> None:
    published = _profile("published", 1024, 128, [75])
    published = published.model_copy(
        update={"levels": [published.levels[0].model_copy(update={"ttft_p95_ms": None})]}
    )
    there, here = _profile("estimated", 1024, 128, [80]), _profile("estimated", 4096, 128, [60])
    got = scale(published, Workload(input_tokens_mean=4096, output_tokens_mean=128), there, here)
    assert got is not None and got.levels[0].ttft_p95_ms is None
    assert got.levels[0].output_tokens_per_s == pytest.approx(75 * 60 / 80)
