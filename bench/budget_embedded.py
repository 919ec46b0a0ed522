"""What a budget check costs a request on the embedded path (``--workers`` on one machine: the mapped
counter file, the default, and the SQLite store, side by side in one run), measured the way the gateway pays it: the reservation at admission and the settlement the
recorder queues (``governance/settler.py``), applied in one batch per turn of the event loop.

``--concurrency K``: K requests are admitted and finish in each turn of the loop, as under load (at 1, a
request alone: every reservation and every settlement is its own transaction). Prints µs per request —
wall clock and the process's CPU time — best of 5 rounds, median in brackets, for the mapped file store,
the SQLite file store and, for scale, the in-memory store. The cost of the tasks themselves (the same tasks doing nothing) is
measured alongside and taken off: the figure is what the budget check adds to a request. Each request draws on three budgets (tenant USD per day, key tokens
per month, workload requests per minute), as in ``governance_bench.py``. The load average is printed: on
this shared 2-core machine figures taken under load are inflated.

``--against REF`` adds the SQLite store as it was at git ``REF`` (its module, over a database its own
migrations built), measured round by round alternately with the current one: a before/after taken in
one run, under the same load. ``--instructions`` counts instead of timing: each store runs under
valgrind (``cachegrind``, no cache simulation) and ``strace -c`` with 200 and 1,200 requests, and the
difference over 1,000 is what one request costs in instructions (user space: SQLite, the sqlite3 module,
our Python) and in system calls — deterministic, whatever else the machine runs.

    .venv/bin/python bench/budget_embedded.py
    .venv/bin/python bench/budget_embedded.py --n 20000 --concurrency 1,16,64
    .venv/bin/python bench/budget_embedded.py --concurrency 1 --against main            # CPU µs, A/B
    .venv/bin/python bench/budget_embedded.py --concurrency 1 --against main --instructions
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.governor import Governor
from modelyard.governance.model import Actual, Subject
from modelyard.governance.runtime import Governance
from modelyard.governance.store import BudgetStore, MemoryBudgetStore
from modelyard.governance.store_mapped import MappedBudgetStore
from modelyard.governance.store_sqlite import SQLiteBudgetStore
from modelyard.ledger.migrate import SCHEMA_MIGRATIONS_DDL, Migration

REPO = Path(__file__).resolve().parent.parent

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


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout


def sqlite_store_at(ref: str, path: str) -> BudgetStore:
    """The SQLite budget store as it was at git ``ref``: its module, over a database built by that
    revision's migrations (its ``__init__`` would run this tree's: it is handed a no-op migrator)."""
    folder = "src/modelyard/ledger/migrations/sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(SCHEMA_MIGRATIONS_DDL)
    for name in sorted(_git("ls-tree", "--name-only", f"{ref}:{folder}").split()):
        for statement in Migration(int(name[:4]), name, _git("show", f"{ref}:{folder}/{name}")).statements():
            db.execute(statement)
    db.close()
    module = types.ModuleType("store_sqlite_at_" + re.sub(r"\W", "_", ref))
    sys.modules[module.__name__] = module
    exec(_git("show", f"{ref}:src/modelyard/governance/store_sqlite.py"), module.__dict__)  # noqa: S102
    module.SQLiteStore = lambda _path: types.SimpleNamespace(close=lambda: None)
    store: BudgetStore = module.SQLiteBudgetStore(path)
    return store


def open_store(kind: str, path: str) -> BudgetStore:
    """``memory``, ``sqlite``, ``mapped`` (this tree's) or ``sqlite@REF``."""
    if kind == "memory":
        return MemoryBudgetStore()
    if kind == "mapped":
        return MappedBudgetStore(path)
    if kind == "sqlite":
        return SQLiteBudgetStore(path)
    return sqlite_store_at(kind.removeprefix("sqlite@"), path)


def rounds(stores: dict[str, BudgetStore], n: int, concurrency: int) -> dict[str, tuple[float, float, float]]:
    """Per store: (best µs, median µs, best CPU µs) per request over 5 rounds, the empty tasks' cost taken
    off. Each round measures every store in turn, so a change of load hits them all alike."""
    governances = {
        kind: Governance(CONFIG, Governor(CONFIG, store), keys=None)  # type: ignore[arg-type]
        for kind, store in stores.items()
    }
    for governance in governances.values():
        run(requests(governance, 500, concurrency))  # warm up: statements prepared, windows cached
    walls: dict[str, list[float]] = {kind: [] for kind in stores}
    cpus: dict[str, list[float]] = {kind: [] for kind in stores}
    for _ in range(5):
        for kind, governance in governances.items():
            start, cpu = time.perf_counter(), time.process_time()
            run(baseline(n, concurrency))
            empty_wall, empty_cpu = time.perf_counter() - start, time.process_time() - cpu
            start, cpu = time.perf_counter(), time.process_time()
            run(requests(governance, n, concurrency))
            walls[kind].append((time.perf_counter() - start - empty_wall) / n * 1e6)
            cpus[kind].append((time.process_time() - cpu - empty_cpu) / n * 1e6)
    for governance in governances.values():
        governance.close()
    return {kind: (min(walls[kind]), statistics.median(walls[kind]), min(cpus[kind])) for kind in stores}


def child(kind: str, n: int, concurrency: int) -> None:
    """Run 300 requests of warm-up and ``n`` more through ``kind``, then exit (under valgrind or strace)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(kind, str(Path(tmp) / "gov.db"))
        governance = Governance(CONFIG, Governor(CONFIG, store), keys=None)  # type: ignore[arg-type]
        run(requests(governance, 300 + n, concurrency))
        governance.close()


def counted(kind: str, concurrency: int) -> tuple[float, dict[str, float]]:
    """Instructions and system calls (by name) per request of ``kind``: runs of 200 and 1,200 requests,
    the difference over 1,000, so start-up and warm-up cancel out."""
    script = [sys.executable, __file__, "--child", kind, "--concurrency", str(concurrency)]
    instructions, calls = [], []
    for n in (200, 1200):
        with tempfile.NamedTemporaryFile() as out:
            grind = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out.name}"]
            report = subprocess.run(
                [*grind, *script, "--n", str(n)], capture_output=True, text=True, check=True
            )
            instructions.append(int(re.search(r"I\s+refs:\s+([\d,]+)", report.stderr)[1].replace(",", "")))  # type: ignore[index]
        with tempfile.NamedTemporaryFile() as out:
            subprocess.run(["strace", "-f", "-c", "-o", out.name, *script, "--n", str(n)], check=True)
            rows = re.findall(
                r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", Path(out.name).read_text(), re.M
            )
            calls.append({name: int(count) for count, name in rows if name != "total"})
    per_call = {name: (calls[1].get(name, 0) - calls[0].get(name, 0)) / 1000 for name in calls[1]}
    return (instructions[1] - instructions[0]) / 1000, {k: v for k, v in per_call.items() if v >= 0.05}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="requests per round")
    parser.add_argument("--concurrency", default="1,8,32", help="requests per event-loop turn")
    parser.add_argument("--against", metavar="REF", help="also measure the SQLite store as of git REF")
    parser.add_argument("--instructions", action="store_true", help="count instructions and system calls")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.n, int(args.concurrency))
    kinds = ["memory", "sqlite", "mapped"] + ([f"sqlite@{args.against}"] if args.against else [])
    if args.instructions:
        print(f"{'store':<16} {'per turn':>8} {'instructions / request':>23}  system calls / request")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for kind in kinds:
                instructions, calls = counted(kind, concurrency)
                listed = ", ".join(
                    f"{name} {count:.1f}" for name, count in sorted(calls.items(), key=lambda c: -c[1])
                )
                print(
                    f"{kind:<16} {concurrency:>8} {instructions:>23,.0f}  {sum(calls.values()):.1f}: {listed}"
                )
        return None
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"machine load average at start: {load} on {os.cpu_count()} cores; {args.n} requests a round")
    print(f"{'store':<16} {'per turn':>8} {'µs / request (best, median)':>30} {'CPU µs':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            stores = {
                kind: open_store(kind, str(Path(tmp) / f"{i}-{concurrency}.db"))
                for i, kind in enumerate(kinds)
            }
            for kind, (best, median, cpu) in rounds(stores, args.n, concurrency).items():
                print(f"{kind:<16} {concurrency:>8} {best:>19.1f} ({median:>7.1f}) {cpu:>8.1f}")
    return None


if __name__ == "__main__":
    main()
