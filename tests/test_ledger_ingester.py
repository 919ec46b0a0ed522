"""The process writer: the gateway only spools; the ingester process stores, survives an outage, and is
replaced if it dies. (tests/test_ledger_crash.py covers kill -9 of the gateway with both writers.)"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from modelyard.config.schema import LedgerConfig
from modelyard.ledger import spool
from modelyard.ledger.store import open_store
from modelyard.ledger.writer import Ledger
from tests.ledger_support import attempt, request


def _ids(url: str) -> list[str]:
    store = open_store(url)
    try:
        return [r.request_id for r in store.query(newest_first=False)]
    finally:
        store.close()


async def _until(check: object, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.05)


async def test_the_gateway_holds_no_rows_and_the_ingester_stores_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(LedgerConfig(url=url, spool_dir=str(tmp_path / "spool"), flush_interval_ms=20))
    await ledger.start()
    for i in range(40):
        ledger.record(request(i), [attempt(i)])
    assert ledger._requests == [] and ledger.queued == 40  # spooled, not kept in the gateway's memory
    await _until(lambda: len(_ids(url)) == 40)
    assert ledger.queued == 0
    await ledger.close()
    assert _ids(url) == [f"r{i}" for i in range(40)]
    assert spool.leftovers(tmp_path / "spool") == []


async def test_rows_wait_in_the_spool_while_the_database_is_away(tmp_path: Path) -> None:
    blocked = tmp_path / "ledger.db"
    blocked.mkdir()  # a directory where the database file should be: SQLite cannot open it
    url = f"sqlite:///{blocked}"
    spool_dir = tmp_path / "spool"
    ledger = Ledger(LedgerConfig(url=url, spool_dir=str(spool_dir), flush_interval_ms=20))
    await ledger.start()
    for i in range(10):
        ledger.record(request(i), [attempt(i)])
    await asyncio.sleep(0.5)
    assert len(spool.leftovers(spool_dir)) >= 1, "the rows are on disk, not lost"
    assert ledger.queued == 0 and ledger._requests == []
    blocked.rmdir()
    await _until(lambda: blocked.is_file() and len(_ids(url)) == 10)
    await ledger.close()
    assert _ids(url) == [f"r{i}" for i in range(10)]
    assert spool.leftovers(spool_dir) == []


async def test_an_ingester_that_died_is_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(LedgerConfig(url=url, spool_dir=str(tmp_path / "spool"), flush_interval_ms=20))
    await ledger.start()
    first = ledger._process
    assert first is not None
    os.kill(first.pid, signal.SIGKILL)
    await first.wait()
    for i in range(5):
        ledger.record(request(i), [attempt(i)])
    await _until(lambda: len(_ids(url)) == 5)
    assert ledger._process is not first
    await ledger.close()
    assert _ids(url) == [f"r{i}" for i in range(5)]


def test_a_segment_name_tells_its_age(tmp_path: Path) -> None:
    segment = spool.SpoolSegment(tmp_path)
    segment.release()
    assert abs(spool.started_at(segment.path) - time.time()) < 5
    assert spool.started_at(tmp_path / "not-a-segment.jsonl") == 0.0
