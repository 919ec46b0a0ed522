"""What a budget check costs a request on the embedded path (SQLite budget store, ``--workers`` on one
machine), measured the way the gateway pays it: the reservation at admission and the settlement the
recorder queues (``governance/settler.py``), applied in one batch per turn of the event loop.

``--concurrency K``: K requests are admitted and finish in each turn of the loop, as under load (at 1, a
request alone: every reservation and every settlement is its own transaction). Prints µs per request —
wall clock and the process's CPU time — best of 5 rounds, median in brackets, for the SQLite file store
and, for scale, the in-memory store. The cost of the tasks themselves (the same tasks doing nothing) is
measured alongside and taken off: the figure is what the budget check adds to a request. Each request draws on three budgets (tenant USD per day, key tokens
per month, workload requests per minute), as in ``governance_bench.py``. The load average is printed: on
this shared 2-core machine figures taken under load are inflated.

    .venv/bin/python bench/budget_embedded.py
    .venv/bin/python bench/budget_embedded.py --n 20000 --concurrency 1,16,64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.governor import Governor
from modelyard.governance.model import Actual, Subject
from modelyard.governance.runtime import Governance
from modelyard.governance.store import BudgetStore, MemoryBudgetStore
from modelyard.governance.store_sqlite import SQLiteBudgetStore

try:
    import uvloop

    def run(coro: Coroutine[Any, Any, None]) -> None:
        uvloop.run(coro)  # the gateway's loop (cli/serve.py)
except ImportError:  # pragma: no cover
    run = asyncio.run

CONFIG = GovernanceConfig.model_validate(
    {
        "budgets": [
            {
                "name": "t-usd",
                "scope": "tenant",
                "unit": "usd",
                "limit": "1000000",
                "window": {"kind": "day"},
            },
            {"name": "k-tok", "scope": "key", "unit": "tokens", "limit": 10**15, "window": {"kind": "month"}},
            {
                "name": "w-rpm",
                "scope": "workload",
                "unit": "requests",
                "limit": 10**12,
                "window": {"kind": "period", "seconds": 60},
            },
        ]
    }
)
WHO = Subject("acme", "k1", "chat")
ESTIMATE = Estimate(10**9, 100, 200)
USED = Actual(9 * 10**8, 250)


async def one(governance: Governance) -> None:
    """One request's share: the reservation as ``gateway.budgeting.reserve_async`` makes it (joined to
    this turn's batch), the settlement as the recorder queues it."""
    governor = governance.governor
    reservation = governor.prepare(WHO, ESTIMATE)
    governor.conclude(reservation, await governance.settler.hold(reservation))
    governance.settler.submit(reservation, USED, WHO, 0)


async def requests(governance: Governance, n: int, concurrency: int) -> None:
    """``n`` requests, ``concurrency`` of them admitted in each turn of the loop (one task each, as the
    server runs each request)."""
    for _ in range(n // concurrency):
        await asyncio.gather(*(one(governance) for _ in range(concurrency)))
    await asyncio.sleep(0)  # the last settlements


async def baseline(n: int, concurrency: int) -> None:
    """The same tasks doing nothing: subtracted, so the figure is what the budget check adds."""

    async def nothing() -> None:
        await asyncio.sleep(0)

    for _ in range(n // concurrency):
        await asyncio.gather(*(nothing() for _ in range(concurrency)))


def measure(store: BudgetStore, n: int, concurrency: int) -> tuple[float, float, float]:
    """(best µs, median µs, best CPU µs) per request over 5 rounds, the empty tasks' cost taken off."""
    governance = Governance(CONFIG, Governor(CONFIG, store), keys=None)  # type: ignore[arg-type]
    run(requests(governance, 500, concurrency))  # warm up: statements prepared, windows cached
    walls, cpus = [], []
    for _ in range(5):
        start, cpu = time.perf_counter(), time.process_time()
        run(baseline(n, concurrency))
        empty_wall, empty_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        run(requests(governance, n, concurrency))
        walls.append((time.perf_counter() - start - empty_wall) / n * 1e6)
        cpus.append((time.process_time() - cpu - empty_cpu) / n * 1e6)
    governance.close()
    return min(walls), statistics.median(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="requests per round")
    parser.add_argument("--concurrency", default="1,8,32", help="requests per event-loop turn")
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"machine load average at start: {load} on {os.cpu_count()} cores; {args.n} requests a round")
    print(f"{'store':<8} {'per turn':>8} {'µs / request (best, median)':>30} {'CPU µs':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for kind in ("memory", "sqlite"):
                store: BudgetStore = (
                    MemoryBudgetStore()
                    if kind == "memory"
                    else SQLiteBudgetStore(str(Path(tmp) / f"gov-{concurrency}.db"))
                )
                best, median, cpu = measure(store, args.n, concurrency)
                print(f"{kind:<8} {concurrency:>8} {best:>19.1f} ({median:>7.1f}) {cpu:>8.1f}")


if __name__ == "__main__":
    main()
