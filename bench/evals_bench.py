"""Eval harness overhead: 1,000 cases × 3 candidates against fast loopback fakes.

    .venv/bin/python bench/evals_bench.py [--cases 1000] [--concurrency 32]

The fake (tests/fakes/scripted_openai.py) runs in its own thread and event loop so the harness's loop
only does harness work. Two passes over the same cache:

- cold: every (case, candidate) goes through the gateway adapter to the fake: the end-to-end time;
- warm: every answer comes from the SQLite cache, so the time per case is the harness's own overhead
  (cache look-up, scoring with exact + JSON Schema + regex checks, bookkeeping), with no model latency.

The issue's targets: cold pass under 20 s; overhead under 1 ms per case.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.common import serve_app  # noqa: E402
from tests.fakes.scripted_openai import ScriptedState, create_app, write_eval_config  # noqa: E402

from modelyard.config import load_config  # noqa: E402
from modelyard.evals.cache import ResultCache  # noqa: E402
from modelyard.evals.golden import load_golden_set  # noqa: E402
from modelyard.evals.runner import RunOptions, run_eval  # noqa: E402

SCHEMA = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}


def write_set(folder: Path, cases: int) -> tuple[Path, dict[str, str]]:
    lines, answers = [], {}
    for i in range(cases):
        prompt = f"case {i}: give n"
        kind = i % 3
        if kind == 0:
            case = {"id": f"c{i}", "messages": [{"role": "user", "content": prompt}], "expected": str(i)}
            answers[prompt] = str(i)
        elif kind == 1:
            case = {"id": f"c{i}", "messages": [{"role": "user", "content": prompt}], "schema": SCHEMA}
            answers[prompt] = orjson.dumps({"n": i}).decode()
        else:
            checks = [{"type": "regex", "pattern": r"^n=\d+$"}]
            case = {"id": f"c{i}", "messages": [{"role": "user", "content": prompt}], "checks": checks}
            answers[prompt] = f"n={i}"
        lines.append(orjson.dumps(case).decode())
    path = folder / "bench.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, answers


def start_fake(state: ScriptedState) -> tuple[str, asyncio.AbstractEventLoop, asyncio.Event]:
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with serve_app(create_app(state)) as url:
            ready.append(url)
            await stop.wait()

    threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True).start()
    while not ready:
        time.sleep(0.01)
    return ready[0], loop, stop


async def one_pass(
    config_path: Path, set_path: Path, cache_path: Path, concurrency: int
) -> tuple[float, int, int]:
    config = load_config(config_path)
    golden = load_golden_set(set_path)
    cache = ResultCache(cache_path)
    started = time.perf_counter()
    try:
        options = RunOptions(concurrency=concurrency)
        run = await run_eval(config, golden, ["good", "badjson", "slow"], cache, options)
    finally:
        cache.close()
    return time.perf_counter() - started, run.calls_made, run.cache_hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        set_path, answers = write_set(folder, args.cases)
        state = ScriptedState(answers=answers, slow_s=0.0)  # all three candidates answer at once
        url, loop, stop = start_fake(state)
        config_path = write_eval_config(folder, url)
        jobs = args.cases * 3
        cold, calls, _ = asyncio.run(one_pass(config_path, set_path, folder / "c.db", args.concurrency))
        warm, _, hits = asyncio.run(one_pass(config_path, set_path, folder / "c.db", args.concurrency))
        loop.call_soon_threadsafe(stop.set)
    print(f"cold: {args.cases} cases x 3 candidates = {jobs} jobs, {calls} model calls in {cold:.2f} s "
          f"({cold / jobs * 1000:.3f} ms per job, concurrency {args.concurrency}); target < 20 s")  # fmt: skip
    print(f"warm (all {hits} from cache): {warm:.2f} s = {warm / jobs * 1000:.3f} ms harness overhead per case; "
          "target < 1 ms")  # fmt: skip


if __name__ == "__main__":
    main()
