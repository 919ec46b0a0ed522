"""How many streamed requests per second the load generator sustains on one core.

The benchmark is only meaningful if the load generator is not the bottleneck. This runs the instant fake
(``tests/fakes/batching_server.py`` with no engine delay: every answer written at once, a real SSE stream
with role, content, finish and usage chunks and ``[DONE]``) in its own process, pinned to one core, and
the load generator's closed loop pinned to another, and prints the requests/s it completed.

    .venv/bin/python bench/loadgen_bench.py [--seconds 5] [--concurrency 64] [--tokens 4]

Target: at least 2,000 streamed requests/s on one core. On a shared machine, other work on the same cores
lowers the figure: the script prints the cores used and the load average so the reader can judge.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def serve(port: int, tokens: int) -> None:
    """The fake server process: serve until killed."""
    from aiohttp import web
    from tests.fakes.batching_server import BatchingParams, create_app

    app = create_app(BatchingParams(step_base_s=0.0, step_per_seq_s=0.0))
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop)


async def load(url: str, seconds: float, concurrency: int, tokens: int) -> None:
    from tests.fakes.batching_server import BatchingParams

    from modelyard.benchmark import Endpoint, Slo, concurrency_plan, run_sweep
    from modelyard.benchmark.workload import fixed_lengths

    endpoint = Endpoint(url + "/v1", BatchingParams().model)
    plan = concurrency_plan([concurrency], max_requests=10**9, duration_s=seconds)
    started = time.process_time()
    result = await run_sweep(endpoint, plan, fixed_lengths(32, tokens), Slo(), asyncio.Event())
    cpu = time.process_time() - started
    level = result.levels[0]
    print(f"concurrency {concurrency}, {tokens} tokens per answer, {seconds:g} s")
    print(f"requests: {level.requests} ({level.errors} errors)")
    print(f"streamed requests/s: {level.requests_per_s:,.0f}")
    print(f"load generator CPU: {cpu:.2f} s for {level.window_s:.2f} s of load "
          f"({cpu / level.window_s:.0%} of one core)")  # fmt: skip
    # When the fake server (or a neighbour on the shared machine) is the bottleneck, the generator idles;
    # what one core of it can sustain is then requests per CPU-second spent by the generator.
    print(f"load generator capacity: {level.requests / cpu:,.0f} streamed requests per CPU-second")
    print(f"TTFT p50 {level.ttft_p50_ms:.2f} ms, e2e p50 {level.e2e_p50_ms:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=4)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.tokens)
        return
    from tests.fakes.common import free_port

    cores = sorted(os.sched_getaffinity(0))
    client_core, server_core = cores[0], cores[-1]
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", str(server_core), sys.executable, __file__, "--serve", str(port)], cwd=ROOT
    )
    try:
        os.sched_setaffinity(0, {client_core})
        time.sleep(1.5)  # let the server bind
        print(f"client pinned to core {client_core}, fake server to core {server_core}; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)")  # fmt: skip
        try:
            import uvloop

            uvloop.run(load(f"http://127.0.0.1:{port}", args.seconds, args.concurrency, args.tokens))
        except ImportError:
            asyncio.run(load(f"http://127.0.0.1:{port}", args.seconds, args.concurrency, args.tokens))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
