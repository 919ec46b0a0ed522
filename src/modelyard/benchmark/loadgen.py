"""The load generator: one level of a sweep, at a fixed concurrency or at a Poisson request rate.

A level is bounded twice: at most ``max_requests`` requests are started, and none after ``duration_s``.
Requests in flight when the level stops issuing are allowed to finish (their latencies count), so the
last ones see a shrinking batch; throughput is therefore measured over the *issuing window* only, see
:mod:`modelyard.benchmark.stats`. Setting ``stop`` (Ctrl-C) ends the level at once: in-flight requests
are cancelled and the finished ones are kept.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter_ns

from modelyard.benchmark.client import Endpoint, RequestResult, stream_once
from modelyard.transport.http1 import Pool

#: Builds the next request's body (prompt and ``max_tokens`` drawn from the workload).
BodyFactory = Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class LevelSpec:
    """Exactly one of ``concurrency`` (closed loop) and ``request_rate`` (open loop, Poisson) is set."""

    concurrency: int | None = None
    request_rate: float | None = None
    max_requests: int = 1000
    duration_s: float = 60.0

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency is not None else f"{self.request_rate:g} req/s"


@dataclass(slots=True)
class LevelRun:
    """One level's requests; times are ``perf_counter_ns`` nanoseconds, the clock of the requests."""

    spec: LevelSpec
    start: int
    #: When the last request was issued (or the level was stopped): the end of the measuring window.
    issue_end: int = 0
    results: list[RequestResult] = field(default_factory=list)
    #: The level was cut short by Ctrl-C.
    partial: bool = False


async def run_level(
    pool: Pool,
    endpoint: Endpoint,
    spec: LevelSpec,
    next_body: BodyFactory,
    stop: asyncio.Event,
    on_result: Callable[[RequestResult], None] = lambda _: None,
    rng: random.Random | None = None,
) -> LevelRun:
    """Run one level to completion (or until ``stop`` is set) and return every finished request."""
    run = LevelRun(spec=spec, start=perf_counter_ns())
    deadline = run.start + round(spec.duration_s * 1e9)

    async def one() -> None:
        result = await stream_once(pool, endpoint, next_body())
        run.results.append(result)
        on_result(result)

    if spec.concurrency is not None:
        load = _closed_loop(one, spec, deadline, run)
    else:
        load = _open_loop(one, spec, deadline, run, rng or random.Random())
    load_task = asyncio.ensure_future(load)
    stop_task = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({load_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        if not load_task.done():
            run.partial = True
            run.issue_end = run.issue_end or perf_counter_ns()
            load_task.cancel()
            await asyncio.gather(load_task, return_exceptions=True)
    if not run.partial:
        load_task.result()  # re-raise a bug in the generator itself
    return run


async def _closed_loop(
    one: Callable[[], Awaitable[None]], spec: LevelSpec, deadline: int, run: LevelRun
) -> None:
    """``concurrency`` workers, each sending its next request as soon as the previous one ends."""
    assert spec.concurrency is not None
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < spec.max_requests and perf_counter_ns() < deadline:
            issued += 1
            if issued == spec.max_requests:
                run.issue_end = perf_counter_ns()
            await one()
        # The first worker to find the level over marks the end of steady load.
        run.issue_end = run.issue_end or perf_counter_ns()

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))


async def _open_loop(
    one: Callable[[], Awaitable[None]], spec: LevelSpec, deadline: int, run: LevelRun, rng: random.Random
) -> None:
    """Requests arrive as a Poisson process: exponential gaps, independent of how the server keeps up."""
    assert spec.request_rate is not None
    tasks: set[asyncio.Task[None]] = set()
    next_at = float(perf_counter_ns())
    for _ in range(spec.max_requests):
        next_at += rng.expovariate(spec.request_rate) * 1e9
        if next_at >= deadline:
            break
        await asyncio.sleep(max(0.0, (next_at - perf_counter_ns()) / 1e9))
        task = asyncio.ensure_future(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    run.issue_end = perf_counter_ns()
    if tasks:
        await asyncio.gather(*tasks)
