"""Instructions per request row the ledger ingester spends storing a spool segment in SQLite.

Writes ``--segments`` spool segments of ``--rows`` lines (one request row and one attempt row each, as the
gateway spools them), then ingests them all under valgrind; a second run that only writes them is
subtracted, so the figure is the ingester's alone: reading and decoding the lines, binding the values,
SQLite's inserts and index updates, the commit and the segment's deletion. Deterministic (±0.1 %),
whatever else the machine runs. ``--src`` measures another checkout.

    .venv/bin/python bench/ledger_ingest_counts.py [--segments 10] [--rows 1000] [--src CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from valgrind_count import instructions  # noqa: E402  (a sibling script's module)


def _child(segments: int, rows: int, ingest: bool) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from ledger_support import attempt, request
    from modelyard.ledger import spool
    from modelyard.ledger.ingester import Ingester

    tmp = Path(tempfile.mkdtemp())
    ingester = Ingester(f"sqlite:///{tmp / 'ledger.db'}")
    assert ingester.store is not None  # opened and migrated here, outside the rows' share
    paths, n = [], 0
    for s in range(segments):
        path = tmp / f"segment-{s:05d}{spool.SUFFIX}"
        with open(path, "wb") as file:
            for _ in range(rows):
                n += 1
                row = request(n, request_id=uuid.uuid4().hex)
                file.write(spool.encode_line(row, [attempt(n, request_id=row.request_id)]))
        paths.append(path)
    if ingest:
        left, error = ingester.ingest(paths)
        assert not left and error is None, error
    ingester.close()


def _instructions(args: argparse.Namespace, ingest: bool) -> int:
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src) / "src")
    argv = [sys.executable, __file__, "--child", "ingest" if ingest else "write"]
    argv += ["--segments", str(args.segments), "--rows", str(args.rows)]
    return instructions(argv, env, "ingester")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1000, help="spool lines per segment")
    parser.add_argument("--src", default="", help="another checkout whose src/ is measured")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.segments, args.rows, ingest=args.child == "ingest")
        return
    per_row = (_instructions(args, True) - _instructions(args, False)) // (args.segments * args.rows)
    label = f"ingester, {args.rows} rows per segment{f' ({args.src})' if args.src else ''}"
    print(f"{label:50s} {per_row:>9,} instructions per request row")


if __name__ == "__main__":
    main()
