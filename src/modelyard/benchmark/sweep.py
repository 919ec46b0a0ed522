"""A whole benchmark run: probe the endpoint, then run each level of the sweep in turn.

Levels run one after another on one pool of keep-alive connections. A stop request (Ctrl-C) ends the
current level and skips the rest; what finished is kept and summarised like any other level (marked
``partial``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from modelyard.benchmark.client import Endpoint, RequestResult
from modelyard.benchmark.errors import BenchmarkError
from modelyard.benchmark.knee import Knee, find_knee
from modelyard.benchmark.loadgen import LevelSpec, run_level
from modelyard.benchmark.probe import EndpointInfo, probe
from modelyard.benchmark.stats import LevelStats, Slo, summarise
from modelyard.benchmark.workload import PromptSynth, TokenLengths
from modelyard.transport.http1 import Pool


class Progress:
    """What a sweep reports while it runs; the CLI draws a progress bar from it. Does nothing here."""

    def level_started(self, spec: LevelSpec, index: int, total: int) -> None:
        """A level begins."""

    def request_done(self, result: RequestResult) -> None:
        """One request of the current level finished (or failed)."""

    def level_done(self, stats: LevelStats) -> None:
        """A level finished; ``stats`` are its figures."""


@dataclass(slots=True)
class SweepResult:
    info: EndpointInfo
    lengths: TokenLengths
    slo: Slo
    levels: list[LevelStats] = field(default_factory=list)
    knee: Knee | None = None
    #: Ctrl-C stopped the sweep before its last level ended.
    interrupted: bool = False


def body_factory(
    endpoint: Endpoint, lengths: TokenLengths, synth: PromptSynth, rng: random.Random
) -> Callable[[], bytes]:
    """Each call draws an (input, output) pair and writes a fresh prompt of that many tokens."""

    def next_body() -> bytes:
        input_tokens, output_tokens = lengths.draw(rng)
        return endpoint.body(synth.text(input_tokens, rng), output_tokens)

    return next_body


async def run_sweep(
    endpoint: Endpoint,
    plan: Sequence[LevelSpec],
    lengths: TokenLengths,
    slo: Slo,
    stop: asyncio.Event,
    progress: Progress | None = None,
    request_timeout_s: float = 600.0,
    seed: int = 0,
) -> SweepResult:
    """Probe ``endpoint`` (raising :class:`BenchmarkError` if it is unusable), then run ``plan``."""
    progress = progress or Progress()
    rng = random.Random(seed)
    # Enough connections that the pool never queues a closed-loop level; rate levels beyond it wait.
    limit = max([spec.concurrency or 0 for spec in plan] + [1024])
    try:
        pool = Pool(endpoint.base_url, limit, connect_timeout_s=10, request_timeout_s=request_timeout_s)
    except ValueError as exc:
        raise BenchmarkError(f"{exc}; give the server's API base, e.g. http://127.0.0.1:8000/v1") from None
    async with pool:
        info = await probe(pool, endpoint)
        result = SweepResult(info=info, lengths=lengths, slo=slo)
        next_body = body_factory(info.endpoint, lengths, info.synth, rng)
        for index, spec in enumerate(plan):
            if stop.is_set():
                result.interrupted = True
                break
            progress.level_started(spec, index, len(plan))
            run = await run_level(pool, info.endpoint, spec, next_body, stop, progress.request_done, rng)
            if run.results:
                stats = summarise(run, slo)
                result.levels.append(stats)
                progress.level_done(stats)
            result.interrupted = result.interrupted or run.partial
    result.knee = find_knee(result.levels, slo)
    return result


def concurrency_plan(levels: Sequence[int], max_requests: int, duration_s: float) -> list[LevelSpec]:
    return [LevelSpec(concurrency=c, max_requests=max_requests, duration_s=duration_s) for c in levels]


def rate_plan(rates: Sequence[float], max_requests: int, duration_s: float) -> list[LevelSpec]:
    return [LevelSpec(request_rate=r, max_requests=max_requests, duration_s=duration_s) for r in rates]
