"""The load generator against a fake continuous-batching server whose true capacity is known."""

from __future__ import annotations

import asyncio

import pytest

from modelyard.benchmark import Endpoint, Slo, concurrency_plan, rate_plan, run_sweep
from modelyard.benchmark.workload import fixed_lengths
from tests.fakes.batching_server import BatchingParams, create_app
from tests.fakes.common import serve_app

PARAMS = BatchingParams(max_batch=8, step_base_s=0.004, step_per_seq_s=0.0005)  # capacity 1,000 tok/s


async def test_concurrency_sweep_recovers_the_knee_within_ten_percent() -> None:
    async with serve_app(create_app(PARAMS)) as url:
        result = await run_sweep(
            Endpoint(url + "/v1", PARAMS.model),
            concurrency_plan([1, 4, 8, 16], max_requests=10_000, duration_s=1.0),
            fixed_lengths(100, 32),
            Slo(ttft_ms=50),
            asyncio.Event(),
        )
    assert result.knee is not None
    assert result.knee.concurrency == PARAMS.max_batch
    assert result.knee.output_tokens_per_s == pytest.approx(PARAMS.capacity_tokens_per_s, rel=0.10)
    by_c = {lv.concurrency: lv for lv in result.levels}
    # Throughput saturates past the batch limit, while queueing drives time to first token up.
    assert by_c[16].output_tokens_per_s == pytest.approx(by_c[8].output_tokens_per_s, rel=0.10)
    assert by_c[16].ttft_p95_ms > 5 * by_c[8].ttft_p95_ms
    assert by_c[16].goodput < 0.9 <= by_c[8].goodput
    # Token counts come from usage; the prompt was synthesised to the target length through calibration.
    assert by_c[8].output_tokens_mean == 32
    assert by_c[8].input_tokens_mean == pytest.approx(100, abs=1)
    assert by_c[1].itl_p50_ms == pytest.approx(PARAMS.step_s(1) * 1000, rel=0.3)
    assert result.info.engine == "vllm"


async def test_poisson_rate_levels_deliver_the_offered_rate_below_capacity() -> None:
    async with serve_app(create_app(PARAMS)) as url:
        result = await run_sweep(
            Endpoint(url + "/v1", PARAMS.model),
            rate_plan([10.0, 60.0], max_requests=10_000, duration_s=1.5),
            fixed_lengths(50, 16),
            Slo(),
            asyncio.Event(),
        )
    low, high = result.levels
    assert low.request_rate == 10.0
    assert low.requests_per_s == pytest.approx(10.0, rel=0.5)  # Poisson: few arrivals in 1.5 s
    # 60 req/s x 16 tokens = 960 tok/s offered, at capacity: the queue grows and TTFT with it.
    assert high.ttft_p95_ms > low.ttft_p95_ms
    assert high.concurrency > low.concurrency >= 1


async def test_stop_keeps_the_finished_requests_of_an_interrupted_level() -> None:
    stop = asyncio.Event()
    async with serve_app(create_app(PARAMS)) as url:
        asyncio.get_running_loop().call_later(0.6, stop.set)
        result = await run_sweep(
            Endpoint(url + "/v1", PARAMS.model),
            concurrency_plan([4, 8], max_requests=10_000, duration_s=30.0),
            fixed_lengths(20, 8),
            Slo(),
            stop,
        )
    assert result.interrupted
    assert len(result.levels) == 1 and result.levels[0].partial
    assert result.levels[0].requests > 0 and result.levels[0].errors == 0


async def test_server_rejecting_ignore_eos_is_measured_without_it() -> None:
    params = BatchingParams(accepts_ignore_eos=False, step_base_s=0.001, step_per_seq_s=0.0)
    async with serve_app(create_app(params)) as url:
        result = await run_sweep(
            Endpoint(url + "/v1", params.model),
            concurrency_plan([2], max_requests=10, duration_s=2.0),
            fixed_lengths(20, 4),
            Slo(),
            asyncio.Event(),
        )
    assert result.info.endpoint.ignore_eos is False
    assert result.levels[0].requests == 10 and result.levels[0].errors == 0
