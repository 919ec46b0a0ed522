"""Benchmark of reading a big ledger: ``modelyard ledger export`` (Parquet) and ``modelyard ledger summary``.

1. Generates N requests (default 1,000,000) into a SQLite ledger through the store's own ``insert``
   (the same code path as the gateway's writer), unless ``--db`` already holds them.
2. Times the export to Parquet (and, with ``--formats``, CSV / JSON Lines) exactly as the CLI runs it:
   ``store.iter_rows`` batches → ``export_batches``.
3. Times ``store.summary(("workload", "model"))``.

Each timed phase runs in a fresh child process, so its peak RSS (``ru_maxrss``) is its own and not the
generator's. Run: ``.venv/bin/python bench/ledger_export_bench.py [--rows 10000000] [--db PATH]
[--formats parquet,csv,jsonl] [--batch-size N]``. The machine is shared: ``/proc/loadavg`` is printed
before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modelyard.ledger.export import export_batches
from modelyard.ledger.schema import RequestRow
from modelyard.ledger.store import DEFAULT_BATCH_ROWS, open_store

WORKLOADS = ("support", "batch", "search", "legal", None)
MODELS = ("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash")
INSERT_ROWS = 20_000


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synthetic(first: int, count: int, rng: random.Random) -> list[RequestRow]:
    """Plausible requests: five workloads (one NULL), three models, ~4% errors, ~10% unpriced."""
    rows = []
    for i in range(first, first + count):
        status = 200 if rng.random() > 0.04 else rng.choice((429, 500, 502))
        priced = rng.random() > 0.1
        inp, out = rng.randrange(50, 6000), rng.randrange(5, 900)
        rows.append(
            RequestRow(
                request_id=f"req-{i:010d}",
                ts=1_790_000_000.0 + i * 0.25,
                endpoint="chat",
                workload=WORKLOADS[i % 5],
                data_class="internal",
                tenant="acme" if i % 3 else None,
                api_key_id=f"key-{i % 7}",
                model=MODELS[i % 3],
                provider="openai",
                provider_kind="openai",
                upstream_model=MODELS[i % 3] + "-2025",
                status=status,
                error_kind=None if status == 200 else "upstream_unavailable",
                streamed=i % 2 == 0,
                input_tokens=inp,
                output_tokens=out,
                cost_pico_usd=(inp * 150_000 + out * 600_000) if priced else None,
                priced=priced,
                price_version="2025-06" if priced else None,
                latency_ms=rng.lognormvariate(6.5, 0.6),
                ttft_ms=rng.lognormvariate(5.0, 0.5) if i % 2 == 0 else None,
                upstream_latency_ms=rng.uniform(100, 3000),
                overhead_ms=rng.uniform(0.2, 3.0),
                attempts=1,
                finish_reason="stop",
                route="single: served by openai",
                policy="internal (workload); allows any",
            )
        )
    return rows


def generate(db: Path, rows: int) -> None:
    have = 0
    if db.exists():
        with sqlite3.connect(db) as conn:
            have = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    if have >= rows:
        print(f"reusing {db}: {have:,} rows")
        return
    store = open_store(f"sqlite:///{db}")
    rng = random.Random(have)
    start = time.perf_counter()
    for first in range(have, rows, INSERT_ROWS):
        store.insert(synthetic(first, min(INSERT_ROWS, rows - first), rng), [])
    store.close()
    seconds = time.perf_counter() - start
    print(f"generated {rows - have:,} rows in {seconds:.1f} s ({(rows - have) / seconds:,.0f} rows/s)")


def phase(args: argparse.Namespace) -> dict[str, float]:
    """One timed phase, in this (child) process."""
    store = open_store(f"sqlite:///{args.db}")
    base = peak_rss_mb()
    start = time.perf_counter()
    if args.phase == "summary":
        groups = store.summary(("workload", "model"))
        rows = sum(g.requests for g in groups)
    else:
        out = Path(args.out)
        batches = store.iter_rows("requests", batch_size=args.batch_size)
        rows = export_batches(batches, RequestRow, out, args.phase)
    seconds = time.perf_counter() - start
    store.close()
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "start_rss_mb": base}


def run_phase(name: str, db: Path, out: Path, batch_size: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--phase", name, "--db", str(db), "--out", str(out)]
    command += ["--batch-size", str(batch_size)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="SQLite file (kept and reused); default: a temporary one")
    parser.add_argument("--formats", default="parquet", help="comma-separated: parquet,csv,jsonl")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_ROWS)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return
    folder = Path(tempfile.mkdtemp(prefix="ledger-bench-")) if args.db is None else args.db.parent
    db = args.db or folder / "ledger.db"
    print(f"load before: {loadavg()}  (cores: {os.cpu_count()})")
    generate(db, args.rows)
    print(f"database: {db.stat().st_size / 2**20:,.0f} MiB")
    for name in [*args.formats.split(","), "summary"]:
        out = folder / f"export.{name}"
        figures = run_phase(name, db, out, args.batch_size)
        size = f", file {out.stat().st_size / 2**20:,.0f} MiB" if out.exists() else ""
        print(
            f"{name:>8}: {figures['rows']:,} rows in {figures['seconds']:.1f} s = "
            f"{figures['rows'] / figures['seconds']:,.0f} rows/s; peak RSS {figures['peak_rss_mb']:.0f} MiB "
            f"(after imports {figures['start_rss_mb']:.0f} MiB){size}"
        )
        out.unlink(missing_ok=True)
    print(f"load after: {loadavg()}")


if __name__ == "__main__":
    main()
