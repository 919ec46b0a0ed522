"""Benchmark of the decision engine (issue 4 targets: < 2 s and < 30 s on this machine).

1. 200 workloads × 40 options × 36 months: monthly TCO of every pair, then the portfolio MILP.
2. A ledger of N requests (default 10 million, SQLite) profiled into workloads.

Run: ``.venv/bin/python bench/decide_bench.py [--rows 10000000] [--keep path.db]``. Prints the figures.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from modelyard.catalog.serving import Level
from modelyard.economics.capacity import ReplicaCapacity
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile
from modelyard.economics.portfolio import Candidate, optimise
from modelyard.economics.tco import Demand, tco
from modelyard.economics.traffic import read_ledger
from modelyard.economics.workload import build_profiles

ROOT = Path(__file__).resolve().parents[1]


def bench_portfolio(workloads: int = 200, options: int = 40) -> None:
    org = OrgProfile.model_validate({
        "organisation": "bench", "horizon_months": 36, "engineering": {"loaded_cost_per_year": 200000},
        "stacks": {"self_hosted": {"build_engineer_months": 4, "run_fte": "0.5", "ops_per_month": 2000}},
        "trends": {"api_price_pct_per_year": -30, "gpu_price_pct_per_year": -15},
        "candidates": {"api": [{"provider": "openai", "model": "gpt-4o-mini"}]},
    })  # fmt: skip
    level = Level(concurrency=16, requests_per_s=4, output_tokens_per_s=1000)
    opts = []
    for i in range(options):
        if i % 2 == 0:
            opts.append(Option(key=f"api:p/m{i}", kind="api", label=f"m{i}", model=f"m{i}", vendor="p",
                               price_per_request=Decimal("0.0004") * (1 + i)))  # fmt: skip
        else:
            opts.append(Option(
                key=f"self_hosted:m{i}", kind="self_hosted", label=f"s{i}", model=f"s{i}", vendor="v",
                gpu_hourly=Decimal("1.5") + Decimal(i) / 10, gpu_count=1 + i % 4,
                replica=ReplicaCapacity(requests_per_s=Decimal(2 + i % 7), level=level, meets_slo=True),
            ))  # fmt: skip
    demands = [
        Demand(
            Decimal(20_000 * (1 + (w * 37) % 400)),
            Decimal("0.02"),
            Decimal(2 + w % 5),
            [Decimal(1) / 24] * 24,
        )
        for w in range(workloads)
    ]
    t0 = time.perf_counter()
    candidates = [Candidate(f"w{w}", o, d, tco(o, d, org)) for w, d in enumerate(demands) for o in opts]
    t1 = time.perf_counter()
    result = optimise(candidates, [f"w{w}" for w in range(workloads)], org)
    t2 = time.perf_counter()
    print(f"portfolio: {workloads} workloads x {options} options x 36 months: TCO {t1 - t0:.2f} s, "
          f"MILP {t2 - t1:.2f} s, total {t2 - t0:.2f} s ({result.status}; ${result.total:,.0f})")  # fmt: skip


def make_ledger(path: Path, rows: int) -> None:
    migration = (ROOT / "src/modelyard/ledger/migrations/sqlite/0001_init.sql").read_text()
    conn = sqlite3.connect(path)
    conn.executescript(migration)
    conn.execute("DROP INDEX requests_workload_ts")  # faster bulk load; the profile query scans anyway
    conn.execute("DROP INDEX requests_model_ts")
    conn.execute("DROP INDEX requests_ts")
    conn.execute(
        f"""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1})
        INSERT INTO requests (request_id, ts, endpoint, workload, data_class, model, provider_kind, status,
                              streamed, input_tokens, output_tokens, latency_ms, ttft_ms, cost_pico_usd)
        SELECT i, 1790000000 + i * (5184000.0 / {rows}), 'chat', 'w' || (i % 20), 'internal',
               'gpt-4o-mini', 'openai', CASE WHEN i % 97 = 0 THEN 500 ELSE 200 END, 0,
               500 + i % 1500, 100 + i % 400, 300 + (i * 7919) % 5000, 50 + (i * 104729) % 800, 1000000 + i % 5000
        FROM n"""
    )
    conn.commit()
    conn.close()


def bench_ledger(rows: int, keep: str | None) -> None:
    path = Path(keep) if keep else Path(tempfile.mkdtemp()) / "ledger.db"
    if not path.exists():
        t = time.perf_counter()
        make_ledger(path, rows)
        print(
            f"ledger: wrote {rows:,} rows in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 1e9:.2f} GB)"
        )
    org = OrgProfile.model_validate({
        "organisation": "bench", "engineering": {"loaded_cost_per_year": 200000},
        "candidates": {"api": [{"provider": "openai", "model": "gpt-4o-mini"}]},
    })  # fmt: skip
    t0 = time.perf_counter()
    traffic = read_ledger(f"sqlite:///{path}")
    t1 = time.perf_counter()
    profiles = build_profiles(traffic, org)
    t2 = time.perf_counter()
    print(f"ledger: {rows:,} rows profiled into {len(profiles)} workloads: SQL {t1 - t0:.2f} s, "
          f"profiles {t2 - t1:.2f} s, total {t2 - t0:.2f} s")  # fmt: skip
    if not keep:
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", default=None, help="reuse (or create) this ledger file")
    parser.add_argument("--skip-ledger", action="store_true")
    args = parser.parse_args()
    bench_portfolio()
    if not args.skip_ledger:
        bench_ledger(args.rows, args.keep)


if __name__ == "__main__":
    main()
