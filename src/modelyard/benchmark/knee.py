"""The knee of a sweep: the most throughput the server delivers while still meeting the objective.

A level is *eligible* when its error rate is at most 1% and its p95 time to first token and p95
end-to-end latency meet the objectives (the same test the capacity model applies, see
:mod:`modelyard.economics.capacity`). Past saturation, more concurrency buys a few percent of
throughput at a large cost in latency; so the knee is the *least* loaded eligible level that reaches
within ``tolerance`` of the best eligible throughput, not the most loaded one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelyard.benchmark.stats import LevelStats, Slo

#: Above this error rate a level is overloaded, whatever its throughput (as in the capacity model).
MAX_ERROR_RATE = 0.01
#: Throughput within this share of the best counts as "as good": avoids buying noise with latency.
TOLERANCE = 0.05


@dataclass(frozen=True, slots=True)
class Knee:
    concurrency: int
    output_tokens_per_s: float
    requests_per_s: float
    #: Index of the knee level in the sweep's list of levels.
    index: int


def eligible(level: LevelStats, slo: Slo) -> bool:
    if level.error_rate > MAX_ERROR_RATE or level.output_tokens_per_s <= 0:
        return False
    for objective, value in ((slo.ttft_ms, level.ttft_p95_ms), (slo.e2e_ms, level.e2e_p95_ms)):
        if objective is not None and (math.isnan(value) or value > objective):
            return False
    return True


def find_knee(levels: Sequence[LevelStats], slo: Slo, tolerance: float = TOLERANCE) -> Knee | None:
    """The knee, or ``None`` when no level meets the objective."""
    candidates = [(i, lv) for i, lv in enumerate(levels) if eligible(lv, slo)]
    if not candidates:
        return None
    best = max(lv.output_tokens_per_s for _, lv in candidates)
    index, level = min(
        ((i, lv) for i, lv in candidates if lv.output_tokens_per_s >= best * (1 - tolerance)),
        key=lambda pair: (pair[1].concurrency, pair[1].request_rate or 0.0),
    )
    return Knee(level.concurrency, level.output_tokens_per_s, level.requests_per_s, index)
