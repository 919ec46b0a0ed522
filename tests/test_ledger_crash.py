"""kill -9 of a gateway process before any flush loses no ledger row: the next start replays the spool."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
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

    async def main(url, spool_dir, n, writer):
        ledger = Ledger(LedgerConfig(url=url, spool_dir=spool_dir, flush_interval_ms=60_000, batch_size=100_000,
                                     writer=writer))
        await ledger.start()
        for i in range(n):
            ledger.record(request(i), [attempt(i)])
        print("recorded", ledger.queued, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    """
)


def _stored(url: str) -> tuple[list[str], int]:
    store = open_store(url)
    try:
        return [r.request_id for r in store.query(newest_first=False)], len(store.query_attempts())
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_rows_recorded_before_a_sigkill_are_stored_by_the_next_start(
    store_url: str, tmp_path: Path, writer: str
) -> None:
    """With the thread writer the next start replays the spool; with the process writer the killed
    gateway's ingester (which outlives it) or the next start's does — either way every row, once."""
    n = 250
    spool_dir = tmp_path / "spool"
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, store_url, str(spool_dir), str(n), writer],
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

    if writer == "thread":
        assert _stored(store_url) == ([], 0)  # nothing reached the database before the kill

    ledger = Ledger(LedgerConfig(url=store_url, spool_dir=str(spool_dir), writer=writer))  # type: ignore[arg-type]
    await ledger.start()
    if writer == "thread":
        ids, attempts = _stored(store_url)
    await ledger.close()
    if writer == "process":
        deadline = time.monotonic() + 15
        while (found := _stored(store_url))[0] != [f"r{i}" for i in range(n)] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        ids, attempts = found
    assert ids == [f"r{i}" for i in range(n)]
    assert attempts == n
    assert list(spool_dir.glob("*.jsonl")) == []
