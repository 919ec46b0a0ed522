"""kill -9 of a gateway process before any flush loses no ledger row: the next start replays the spool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelyard.config.schema import LedgerConfig
from modelyard.ledger.store import open_store
from modelyard.ledger.writer import Ledger
from tests.ledger_support import pg_url, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name

ROOT = Path(__file__).resolve().parent.parent

# The doomed process: records N rows with a flush interval far longer than its life, says so, then waits.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from modelyard.config.schema import LedgerConfig
    from modelyard.ledger.writer import Ledger
    from tests.ledger_support import attempt, request

    async def main(url, spool_dir, n):
        ledger = Ledger(LedgerConfig(url=url, spool_dir=spool_dir, flush_interval_ms=60_000, batch_size=100_000))
        await ledger.start()
        for i in range(n):
            ledger.record(request(i), [attempt(i)])
        print("recorded", ledger.queued, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


@pytest.mark.slow
async def test_rows_recorded_before_a_sigkill_are_stored_by_the_next_start(
    store_url: str, tmp_path: Path
) -> None:
    n = 250
    spool_dir = tmp_path / "spool"
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, store_url, str(spool_dir), str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().decode().split() == ["recorded", str(n)]
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    store = open_store(store_url)
    assert store.query() == []  # nothing reached the database before the kill
    store.close()

    ledger = Ledger(LedgerConfig(url=store_url, spool_dir=str(spool_dir)))
    await ledger.start()
    store = open_store(store_url)
    stored = store.query(newest_first=False)
    attempts = store.query_attempts()
    store.close()
    await ledger.close()
    assert [r.request_id for r in stored] == [f"r{i}" for i in range(n)]
    assert len(attempts) == n
    assert list(spool_dir.glob("*.jsonl")) == []
