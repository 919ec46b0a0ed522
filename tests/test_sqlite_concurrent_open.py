"""Several processes opening one fresh SQLite file at once, as ``serve --workers N`` and the
governance tests' process pool do. Each took a shared lock to read the header and then wanted the
exclusive one to switch to WAL; SQLite answers that deadlock with "database is locked" at once, without
waiting out the connection's timeout. CI failed on it (stop 24, test_governance_concurrency): the
stores now retry entering WAL."""

from __future__ import annotations

import multiprocessing
import traceback
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from modelyard.governance.store_sqlite import SQLiteBudgetStore
from modelyard.ledger import migrate
from modelyard.ledger.sqlite_store import SQLiteStore

PROCESSES = 8
ROUNDS = 15  # before the fix, ~1 round in 4 had a process fail (7 of 240 opens over 30 rounds)


def _open(kind: str, path: str, start: Barrier, out: Any) -> None:
    start.wait()
    try:
        (SQLiteStore if kind == "ledger" else SQLiteBudgetStore)(path).close()
        out.put("ok")
    except Exception:  # the parent reports what failed
        out.put(traceback.format_exc(limit=2))


@pytest.mark.parametrize("kind", ["ledger", "governance"])
def test_processes_opening_one_fresh_file_at_once_all_succeed(tmp_path: Path, kind: str) -> None:
    ctx = multiprocessing.get_context("fork")
    failures: list[str] = []
    for n in range(ROUNDS):
        path = str(tmp_path / f"round{n}.db")
        start, out = ctx.Barrier(PROCESSES), ctx.Queue()
        workers = [ctx.Process(target=_open, args=(kind, path, start, out)) for _ in range(PROCESSES)]
        for w in workers:
            w.start()
        results = [out.get(timeout=30) for _ in workers]
        for w in workers:
            w.join(timeout=30)
        failures += [r for r in results if r != "ok"]
        # Every process saw the file in WAL mode and fully migrated.
        store = SQLiteStore(path)
        try:
            assert store.applied_versions() == [m.version for m in migrate.migrations("sqlite")]
            (mode,) = store._db.execute("PRAGMA journal_mode").fetchone()
        finally:
            store.close()
        assert mode == "wal"
    assert failures == [], failures[0]
