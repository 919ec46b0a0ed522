"""Which serving profile sizes a self-hosted option, at the workload's own token shape.

Tiers, most trustworthy first: **measured** (``modelyard bench-endpoint``), **published** (cited), then
**estimated** (:func:`modelyard.catalog.estimate.estimate`: NVIDIA's aiconfigurator grid, else a roofline).

A measured or published profile says how a deployment served *its* shape. Throughput per GPU moves a lot
with the shape (a 1024-in/128-out figure overstates a 2500-in/500-out workload), so such a profile is:

- used as it is when its shape is near the workload's (each of input and output within :data:`NEAR`);
- else **scaled**: every level's figures multiplied by the estimator's own ratio between the workload's
  shape and the profile's, at the same concurrency — the profile keeps its tier, and its reference starts
  with "scaled from …" and names the ratio, so the figure can be re-derived by hand;
- else (no estimate at one of the two shapes) skipped: the next profile, or the estimated tier, is used.
"""

from __future__ import annotations

from collections.abc import Callable

from modelyard.catalog.serving import Level, ServingProfile, Workload

#: A profile within this factor of the workload's input and output lengths is used without scaling.
NEAR = 1.25
_RANK: dict[str, int] = {"measured": 0, "published": 1, "estimated": 2}

#: (workload shape) → the estimated tier's profile of the same deployment at that shape, or ``None``.
Estimator = Callable[[Workload], ServingProfile | None]


def near(a: Workload, b: Workload) -> bool:
    """Both token lengths within a factor :data:`NEAR` of each other."""
    pairs = ((a.input_tokens_mean, b.input_tokens_mean), (a.output_tokens_mean, b.output_tokens_mean))
    return all(max(x, y) <= NEAR * min(x, y) or max(x, y) < 32 for x, y in pairs)


def candidates(
    profiles: list[ServingProfile], model: str, gpu: str, gpu_count: int, quantization: str
) -> list[ServingProfile]:
    """Measured and published profiles of this deployment: most trustworthy, then newest, first."""
    matches = [
        p
        for p in profiles
        if p.model == model and p.gpu == gpu and p.gpu_count == gpu_count and p.quantization == quantization
    ]
    return sorted(matches, key=lambda p: (_RANK[p.source], -p.date.toordinal()))


def profile_for(found: list[ServingProfile], shape: Workload, estimator: Estimator) -> ServingProfile | None:
    """The profile to size from at ``shape``: the first usable of ``found`` (see the module), else the
    estimated tier, else ``None``."""
    here: ServingProfile | None = None
    for profile in found:
        if near(profile.workload, shape):
            return profile
        here = here or estimator(shape)
        there = estimator(profile.workload)
        if here is not None and there is not None:
            scaled = scale(profile, shape, there, here)
            if scaled is not None:
                return scaled
    return here or estimator(shape)


def _at(levels: list[Level], concurrency: int) -> Level:
    """The level of ``levels`` nearest to ``concurrency`` (ties: the lower)."""
    return min(levels, key=lambda lv: (abs(lv.concurrency - concurrency), lv.concurrency))


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def scale(
    profile: ServingProfile, shape: Workload, est_there: ServingProfile, est_here: ServingProfile
) -> ServingProfile | None:
    """``profile`` moved from its shape to ``shape`` by the estimator's ratio at each level's concurrency."""
    levels = []
    ratios = []
    for lv in profile.levels:
        there, here = _at(est_there.levels, lv.concurrency), _at(est_here.levels, lv.concurrency)
        tokens = _ratio(here.output_tokens_per_s, there.output_tokens_per_s)
        if tokens is None:
            return None
        ratios.append(tokens)
        out = lv.output_tokens_per_s * tokens

        def moved(value: float | None, new: float | None, old: float | None) -> float | None:
            r = _ratio(new, old)
            return None if value is None or r is None else value * r

        levels.append(
            lv.model_copy(
                update={
                    "output_tokens_per_s": out,
                    "requests_per_s": out / shape.output_tokens_mean,
                    "ttft_p50_ms": moved(lv.ttft_p50_ms, here.ttft_p50_ms, there.ttft_p50_ms),
                    "ttft_p95_ms": moved(lv.ttft_p95_ms, here.ttft_p95_ms, there.ttft_p95_ms),
                    "ttft_p99_ms": moved(lv.ttft_p99_ms, here.ttft_p99_ms, there.ttft_p99_ms),
                    "itl_p50_ms": moved(lv.itl_p50_ms, here.itl_p50_ms, there.itl_p50_ms),
                    "itl_p99_ms": moved(lv.itl_p99_ms, here.itl_p99_ms, there.itl_p99_ms),
                    "e2e_p50_ms": moved(lv.e2e_p50_ms, here.e2e_p50_ms, there.e2e_p50_ms),
                    "e2e_p95_ms": moved(lv.e2e_p95_ms, here.e2e_p95_ms, there.e2e_p95_ms),
                    "goodput": None,
                    "request_rate": None,
                }
            )
        )
    old = profile.workload
    spread = f"×{min(ratios):.2f}" if min(ratios) == max(ratios) else f"×{min(ratios):.2f}–{max(ratios):.2f}"
    reference = (
        f"scaled from {old.input_tokens_mean:,.0f} in / {old.output_tokens_mean:,.0f} out to "
        f"{shape.input_tokens_mean:,.0f} / {shape.output_tokens_mean:,.0f} by {est_here.engine}'s ratio "
        f"between the two shapes at each concurrency ({spread} tokens/s); {profile.source}: "
        f"{profile.reference or profile.engine}"
    )
    return profile.model_copy(
        update={"levels": levels, "workload": shape, "reference": reference, "knee": None}
    )
