"""Benchmark of the decision engine against issue 4's targets, printed side by side.

1. 200 workloads × 40 options × 36 months: every pair costed month by month (numpy), the portfolio MILP
   (exact pruning + HiGHS), and the chosen options recomputed exactly in Decimal. Target < 2 s.
2. A ledger of N requests (default 10 million) profiled into workloads, from each source: the ledger's
   Parquet export (DuckDB), its JSONL export (DuckDB), and the SQLite database itself (parallel row
   ranges). Target < 30 s. The same synthetic rows are written to every format.

Run: ``.venv/bin/python bench/decide_bench.py [--rows 10000000] [--dir DIR] [--sources parquet,jsonl,sqlite]``.
Files are kept in ``--dir`` and reused. The machine's load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelyard.catalog.serving import Level
from modelyard.economics.aggregate import HistRow, HourRow, Traffic
from modelyard.economics.capacity import ReplicaCapacity
from modelyard.economics.engine import decide, load_catalogs
from modelyard.economics.grid import evaluate
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile, load_org
from modelyard.economics.portfolio import Candidate, optimise
from modelyard.economics.tco import Demand
from modelyard.economics.traffic import read_traffic
from modelyard.economics.workload import build_profiles
from modelyard.ledger.export import arrow_schema
from modelyard.ledger.schema import RequestRow

ROOT = Path(__file__).resolve().parents[1]


def bench_portfolio(workloads: int = 200, options: int = 40) -> float:
    """Seconds to cost and optimise the synthetic portfolio."""
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
    candidates = [Candidate(f"w{w}", o, d) for w, d in enumerate(demands) for o in opts]
    grid = evaluate([(c.option, c.demand) for c in candidates], org)
    t1 = time.perf_counter()
    result = optimise(candidates, [f"w{w}" for w in range(workloads)], org, grid)
    t2 = time.perf_counter()
    print(f"portfolio: {workloads} workloads x {options} options x 36 months: costs (numpy) {t1 - t0:.2f} s, "
          f"MILP + exact Decimal of the chosen {t2 - t1:.2f} s; {result.size[1]} of {result.size[0]} candidates "
          f"kept by exact pruning; {result.status}; ${result.total:,.2f}")  # fmt: skip
    return t2 - t0


def bench_decide(workloads: int = 200) -> tuple[float, int]:
    """Seconds for ``decide()`` end to end (profiles, options, break-even, tornado, triggers, portfolio) on
    synthetic hourly traffic, with the example organisation's candidates; and the options per workload."""
    org = load_org(ROOT / "examples/org.yaml")
    h0 = 1_790_000_000 - 1_790_000_000 % 3600
    hours, hist = [], []
    for w in range(workloads):
        base = 20 + (w * 7919) % 20_000
        for h in range(0, 30 * 24, 3):
            n = base * (1 + (h % 24) // 8)
            hours.append(HourRow(f"w{w}", "internal", "gpt-4.1-mini", "openai", h0 + h * 3600, n, 0, n * 800, 0,
                                 n * 150, n * 900.0, 0, n))  # fmt: skip
        hist += [HistRow(f"w{w}", b, None, 10) for b in range(40, 70)]
    catalogs = load_catalogs(org)
    t0 = time.perf_counter()
    decision = decide(org, Traffic("synthetic", hours, hist), catalogs, date(2026, 11, 23))
    seconds = time.perf_counter() - t0
    p = decision.portfolio
    print(f"decide(): {workloads} workloads x {len(decision.workloads[0].options)} options end to end: "
          f"{seconds:.2f} s ({p.size[1]} of {p.size[0]} candidates kept; {p.status})")  # fmt: skip
    return seconds, len(decision.workloads[0].options)


def make_ledger(path: Path, rows: int) -> None:
    migration = (ROOT / "src/modelyard/ledger/migrations/sqlite/0001_init.sql").read_text()
    conn = sqlite3.connect(path)
    conn.executescript(migration)
    # Faster bulk load; the profile query scans anyway.
    conn.execute("DROP INDEX IF EXISTS requests_workload_ts")
    conn.execute("DROP INDEX IF EXISTS requests_model_ts")
    conn.execute("DROP INDEX IF EXISTS requests_ts")
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


def make_parquet(path: Path, rows: int, chunk: int = 1_000_000) -> None:
    """The same rows as :func:`make_ledger`, as ``modelyard ledger export --format parquet`` writes them."""
    schema = arrow_schema(RequestRow)
    names = pa.array([f"w{k}" for k in range(20)])
    with pq.ParquetWriter(path, schema) as writer:
        for first in range(0, rows, chunk):
            i = np.arange(first, min(first + chunk, rows), dtype=np.int64)
            n = i.size
            cost = 1_000_000 + i % 5000
            cols = {
                "request_id": pa.array(i).cast(pa.string()),
                "ts": 1_790_000_000 + i * (5_184_000.0 / rows),
                "endpoint": pa.array(["chat"] * n),
                "workload": pc.take(names, pa.array(i % 20)),
                "data_class": pa.array(["internal"] * n),
                "model": pa.array(["gpt-4o-mini"] * n),
                "provider_kind": pa.array(["openai"] * n),
                "status": np.where(i % 97 == 0, 500, 200),
                "streamed": np.zeros(n, dtype=bool),
                "input_tokens": 500 + i % 1500,
                "output_tokens": 100 + i % 400,
                "cached_input_tokens": np.zeros(n, dtype=np.int64),
                "cost_pico_usd": cost,
                "priced": np.ones(n, dtype=bool),
                "latency_ms": (300 + (i * 7919) % 5000).astype(np.float64),
                "ttft_ms": (50 + (i * 104729) % 800).astype(np.float64),
                "cost_usd": pa.array(cost).cast(pa.string()),  # a decimal string in the real export
            }
            arrays = [
                pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in schema
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def make_jsonl(parquet: Path, path: Path) -> None:
    """The ledger's JSONL export of the same rows (written by DuckDB from the Parquet file)."""
    duckdb.connect().execute(f"COPY (SELECT * FROM read_parquet('{parquet}')) TO '{path}' (FORMAT json)")


def bench_ledger(rows: int, folder: Path, sources: list[str]) -> dict[str, float]:
    """Seconds to profile ``rows`` requests from each source."""
    org = OrgProfile.model_validate({
        "organisation": "bench", "engineering": {"loaded_cost_per_year": 200000},
        "candidates": {"api": [{"provider": "openai", "model": "gpt-4o-mini"}]},
    })  # fmt: skip
    files = {"parquet": folder / f"ledger{rows}.parquet", "jsonl": folder / f"ledger{rows}.jsonl",
             "sqlite": folder / f"ledger{rows}.db"}  # fmt: skip
    makers = {"parquet": lambda p: make_parquet(p, rows), "sqlite": lambda p: make_ledger(p, rows),
              "jsonl": lambda p: make_jsonl(files["parquet"], p)}  # fmt: skip
    out = {}
    for source in sources:
        if source == "jsonl" and not files["parquet"].exists():
            makers["parquet"](files["parquet"])
        path = files[source]
        if not path.exists():
            t = time.perf_counter()
            makers[source](path)
            print(f"ledger: wrote {rows:,} rows as {source} in {time.perf_counter() - t:.1f} s "
                  f"({path.stat().st_size / 1e9:.2f} GB)")  # fmt: skip
        spec = f"sqlite:///{path}" if source == "sqlite" else str(path)
        t0 = time.perf_counter()
        traffic = read_traffic(spec)
        t1 = time.perf_counter()
        profiles = build_profiles(traffic, org)
        t2 = time.perf_counter()
        assert sum(p.requests for p in profiles) == rows, "every row must be counted"
        print(f"ledger ({source}): {rows:,} rows profiled into {len(profiles)} workloads: aggregate {t1 - t0:.2f} s, "
              f"profiles {t2 - t1:.2f} s, total {t2 - t0:.2f} s  [load {_load()}]")  # fmt: skip
        out[source] = t2 - t0
    return out


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) + f" on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", default=None, help="keep (and reuse) the generated ledger files here")
    parser.add_argument(
        "--sources", default="parquet,jsonl,sqlite", help="comma-separated: parquet,jsonl,sqlite"
    )
    parser.add_argument("--skip-ledger", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {_load()}")
    portfolio = bench_portfolio()
    end_to_end, per_workload = bench_decide()
    ledger = {} if args.skip_ledger else bench_ledger(
        args.rows, Path(args.dir or tempfile.mkdtemp()), args.sources.split(",")
    )  # fmt: skip
    print(f"\n{'figure':<58}{'measured':>10}{'target':>9}")
    print(f"{'200 workloads x 40 options x 36 months, costed + optimised':<58}{portfolio:>9.2f}s{'< 2 s':>9}")
    print(f"{f'decide() end to end, 200 workloads x {per_workload} options':<58}{end_to_end:>9.2f}s{'-':>9}")
    for source, seconds in ledger.items():
        print(f"{f'{args.rows:,} ledger rows profiled ({source})':<58}{seconds:>9.2f}s{'< 30 s':>9}")
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
