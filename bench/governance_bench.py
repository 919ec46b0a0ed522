"""Cost of a budget check: reserve + settle through the Governor, on each store side by side.

Prints µs per reserve+settle (target on the embedded path: <= 50 µs): wall clock, best of 5 rounds
(median in brackets), and the process's CPU time; and, for Redis and PostgreSQL, server round trips per
reserve and per settle (target: one). Settles run one by one, and batched as the recorder would send
them after the response (``--batch``, 32 by default). Each request draws on three budgets (tenant USD
per day, key tokens per month, workload requests per minute), as a realistic config would. The machine's
load average is printed first: on a shared 2-core machine, figures taken under load are inflated.

    .venv/bin/python bench/governance_bench.py              # memory, mapped file, SQLite file, Redis, PostgreSQL
    .venv/bin/python bench/governance_bench.py --n 2000 --stores sqlite,redis
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.governor import Governor
from modelyard.governance.model import Actual, Reservation, Subject
from modelyard.governance.store import BudgetStore, MemoryBudgetStore

REDIS = "redis://127.0.0.1:6379/0"
PG = "postgresql://postgres@127.0.0.1:5432/test"

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


class Counting:
    """Counts the commands (each one network round trip) a redis-py client or psycopg connection sends."""

    def __init__(self) -> None:
        self.calls = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return fn(*args, **kwargs)

        return counted


def measure(store: BudgetStore, n: int, counter: Counting | None, batch: int) -> dict[str, float]:
    """µs per reserve+settle; ``batch`` > 1 settles in batches (the recorder's path), flushes included."""
    gov = Governor(CONFIG, store)
    for _ in range(200):  # warm up: scripts loaded, statements prepared, windows cached
        gov.settle(gov.reserve(WHO, Estimate(10**9, 100, 200)), Actual(10**9, 250))
    rounds: list[float] = []
    cpu: list[float] = []
    trips_reserve = trips_settle = 0
    for _ in range(5):
        pending: list[tuple[Reservation, Actual]] = []
        start = time.perf_counter()
        cpu_start = time.process_time()
        for _ in range(n // 5):
            before = counter.calls if counter else 0
            held = gov.reserve(WHO, Estimate(10**9, 100, 200))
            mid = counter.calls if counter else 0
            if batch == 1:
                gov.settle(held, Actual(10**9, 250))
            else:
                pending.append((held, Actual(10**9, 250)))
                if len(pending) == batch:
                    gov.settle_many(pending)
                    pending = []
            after = counter.calls if counter else 0
            trips_reserve += mid - before
            trips_settle += after - mid
        gov.settle_many(pending)
        rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
        cpu.append((time.process_time() - cpu_start) / (n // 5) * 1e6)
    return {
        "us_best": min(rounds),
        "us_median": statistics.median(rounds),
        "cpu_best": min(cpu),
        "trips_reserve": trips_reserve / n,
        "trips_settle": trips_settle / n,
    }


def open_store(kind: str, tmp: Path) -> tuple[BudgetStore, Counting | None]:
    if kind == "memory":
        return MemoryBudgetStore(), None
    if kind == "sqlite":
        from modelyard.governance.store_sqlite import SQLiteBudgetStore

        return SQLiteBudgetStore(str(tmp / "governance.db")), None
    if kind == "mapped":
        from modelyard.governance.store_mapped import MappedBudgetStore

        return MappedBudgetStore(str(tmp / "mapped.db")), None
    if kind == "redis":
        from modelyard.governance.store_redis import RedisBudgetStore

        redis_store = RedisBudgetStore(REDIS, prefix=f"bench:gov:{uuid.uuid4().hex[:8]}:")
        counter = Counting()
        client: Any = redis_store._redis
        client.execute_command = counter.wrap(client.execute_command)
        make_pipeline = client.pipeline

        def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = make_pipeline(*args, **kwargs)
            pipe.execute = counter.wrap(pipe.execute)  # the batch: one round trip
            pipe.immediate_execute_command = counter.wrap(pipe.immediate_execute_command)  # SCRIPT EXISTS
            return pipe

        client.pipeline = counted_pipeline
        return redis_store, counter
    from modelyard.governance.store_postgres import PostgresBudgetStore

    pg_store = PostgresBudgetStore(PG)
    counter = Counting()
    conn: Any = pg_store._connection()
    conn.execute = counter.wrap(conn.execute)
    return pg_store, counter


def cleanup(kind: str, store: BudgetStore) -> None:
    if kind == "redis":
        client: Any = store._redis  # type: ignore[attr-defined]
        keys = list(client.scan_iter(store._prefix + "*"))  # type: ignore[attr-defined]
        if keys:
            client.delete(*keys)
    if kind == "postgres":
        conn: Any = store._connection()  # type: ignore[attr-defined]
        conn.execute(
            "DELETE FROM gov_counters WHERE counter LIKE 't-usd|%' OR counter LIKE 'k-tok|%' OR counter LIKE 'w-rpm|%'"
        )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="reserve+settle pairs per store")
    parser.add_argument("--stores", default="memory,mapped,sqlite,redis,postgres")
    parser.add_argument("--batch", type=int, default=32, help="settles per batch on the recorder's path")
    args = parser.parse_args()
    print(f"{args.n} reserve+settle pairs, 3 budgets each; best of 5 rounds (median in brackets)")
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"machine load average at start: {load} on {os.cpu_count()} cores")
    print(
        f"{'store':<10} {'settle':<12} {'µs / reserve+settle':>22} {'CPU µs':>8}"
        f" {'round trips / reserve':>22} {'/ settle':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.stores.split(","):
            for batch in (1, args.batch):
                store, counter = open_store(kind, Path(tmp))
                try:
                    got = measure(store, args.n if kind != "postgres" else min(args.n, 2000), counter, batch)
                finally:
                    cleanup(kind, store)
                if counter:
                    trips = f"{got['trips_reserve']:>22.2f} {got['trips_settle']:>9.3f}"
                else:
                    trips = f"{'-':>22} {'-':>9}"
                mode = "each" if batch == 1 else f"batch of {batch}"
                print(
                    f"{kind:<10} {mode:<12} {got['us_best']:>12.1f} ({got['us_median']:>6.1f})"
                    f" {got['cpu_best']:>8.1f} {trips}"
                )


if __name__ == "__main__":
    main()
