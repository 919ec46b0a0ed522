"""Migration 0008 on a budget store that holds reservations: ``gov_holds`` rebuilt WITHOUT ROWID and without
its expiry index (fewer pages written per commit), every hold kept, settled and swept as before."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from modelyard.governance.model import Actual
from modelyard.governance.store_sqlite import SQLiteBudgetStore
from modelyard.ledger import migrate


def _database_before_0008(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(migrate.SCHEMA_MIGRATIONS_DDL)
    for migration in migrate.migrations("sqlite")[:7]:
        for statement in migration.statements():
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (migration.version, time.time()))
    db.close()


def test_0008_keeps_the_holds_and_they_settle_and_sweep_as_before(tmp_path: Path) -> None:
    path = tmp_path / "gov.db"
    _database_before_0008(path)
    now = time.time()
    db = sqlite3.connect(path, isolation_level=None)
    counters = "INSERT INTO gov_counters VALUES (?, 'tokens', 1000, 1, 0, ?, 2e9)"
    db.executemany(counters, [("a", 15), ("b", 20)])
    holds = [
        ("kept", '[["a","tokens",10],["b","tokens",20]]', now + 600),
        ("stale", '[["a","tokens",5]]', now - 1),
    ]
    db.executemany("INSERT INTO gov_holds VALUES (?, ?, ?)", holds)
    db.close()

    store = SQLiteBudgetStore(str(path))  # applies 0008
    try:
        ddl = store._db.execute("SELECT sql FROM sqlite_master WHERE name = 'gov_holds'").fetchone()[0]
        indexes = store._db.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'gov_holds' AND type = 'index'"
        )
        assert (
            "WITHOUT ROWID" in ddl and [r for r in indexes if not r[0].startswith("sqlite_autoindex")] == []
        )
        assert store.sweep(now) == 1, "the expired hold is found without its index"
        states = {s.counter: s for s in store.settle("kept", Actual(tokens=7))}
        assert (states["a"].spent, states["a"].reserved) == (7, 0), "released and charged, once"
        assert (states["b"].spent, states["b"].reserved) == (7, 0)
        assert store.settle("kept", Actual(tokens=7)) == [], "a second settle finds nothing"
        assert store._db.execute("SELECT count(*) FROM gov_holds").fetchone() == (0,)
    finally:
        store.close()
