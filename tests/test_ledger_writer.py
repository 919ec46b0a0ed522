"""The writer: spool, batches, replay after a crash, torn lines, and a database that is down."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import time
from dataclasses import fields
from pathlib import Path

import orjson
import pytest

from modelyard.config.schema import LedgerConfig
from modelyard.ledger import spool
from modelyard.ledger.schema import REQUEST_COLUMNS, RequestRow
from modelyard.ledger.store import LedgerStore, open_store
from modelyard.ledger.writer import Ledger, default_spool_dir
from tests.ledger_support import attempt, pg_url, request, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name


def _config(url: str, spool_dir: Path, **overrides: int) -> LedgerConfig:
    return LedgerConfig(url=url, spool_dir=str(spool_dir), writer="thread", **overrides)


def _ids(url: str) -> list[str]:
    store = open_store(url)
    try:
        return sorted(r.request_id for r in store.query(newest_first=False))
    finally:
        store.close()


def _write_leftover(spool_dir: Path, name: str, lines: list[bytes]) -> Path:
    """A segment as a dead process leaves it: complete lines, no lock held."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / f"{name}{spool.SUFFIX}"
    path.write_bytes(b"".join(lines))
    return path


async def test_close_flushes_everything_and_empties_the_spool(store_url: str, tmp_path: Path) -> None:
    ledger = Ledger(_config(store_url, tmp_path / "spool", flush_interval_ms=60_000))
    await ledger.start()
    for i in range(5):
        ledger.record(request(i), [attempt(i)])
    assert len(spool.leftovers(tmp_path / "spool")) == 1  # on disk before any flush
    await ledger.close()
    assert _ids(store_url) == [f"r{i}" for i in range(5)]
    assert spool.leftovers(tmp_path / "spool") == []


async def test_a_full_batch_flushes_before_the_interval(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(_config(url, tmp_path / "spool", flush_interval_ms=60_000, batch_size=3))
    await ledger.start()
    for i in range(3):
        ledger.record(request(i))
    deadline = time.monotonic() + 5
    while ledger.queued or spool.leftovers(tmp_path / "spool"):
        assert time.monotonic() < deadline, "a full batch was not flushed"
        await asyncio.sleep(0.01)
    assert _ids(url) == ["r0", "r1", "r2"]
    await ledger.close()


async def test_the_interval_flushes_a_partial_batch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(_config(url, tmp_path / "spool", flush_interval_ms=20, batch_size=1000))
    await ledger.start()
    ledger.record(request(1))
    await asyncio.sleep(0.3)
    assert _ids(url) == ["r1"]
    assert spool.leftovers(tmp_path / "spool") == []
    await ledger.close()


async def test_leftover_segments_are_replayed_on_start(store_url: str, tmp_path: Path) -> None:
    lines = [spool.encode_line(request(i), [attempt(i), attempt(i, 2)]) for i in range(4)]
    first = _write_leftover(tmp_path / "spool", "00000000000000000001-999-0", lines[:2])
    second = _write_leftover(tmp_path / "spool", "00000000000000000002-999-0", lines[2:])
    ledger = Ledger(_config(store_url, tmp_path / "spool"))
    await ledger.start()
    assert _ids(store_url) == ["r0", "r1", "r2", "r3"]
    assert not first.exists() and not second.exists()
    await ledger.close()
    store = open_store(store_url)
    assert len(store.query_attempts()) == 8
    store.close()


async def test_replaying_rows_already_stored_adds_nothing(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    store.insert([request(1)], [attempt(1)])
    store.close()
    lines = [spool.encode_line(request(i), [attempt(i)]) for i in (1, 2)]
    _write_leftover(tmp_path / "spool", "00000000000000000001-999-0", lines)
    ledger = Ledger(_config(store_url, tmp_path / "spool"))
    await ledger.start()
    await ledger.close()
    assert _ids(store_url) == ["r1", "r2"]


async def test_a_torn_last_line_is_skipped_with_a_warning(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = [spool.encode_line(request(i), []) for i in (1, 2)]
    torn = spool.encode_line(request(3), [])[:40]
    path = _write_leftover(tmp_path / "spool", "00000000000000000001-999-0", [*good, torn])
    ledger = Ledger(_config(store_url, tmp_path / "spool"))
    with caplog.at_level(logging.WARNING, logger="modelyard.ledger"):
        await ledger.start()
    await ledger.close()
    assert _ids(store_url) == ["r1", "r2"]
    assert "torn last line" in caplog.text
    assert not path.exists()


async def test_an_unreadable_middle_line_keeps_the_file_for_inspection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    lines = [spool.encode_line(request(1), []), b"{not json\n", spool.encode_line(request(2), [])]
    path = _write_leftover(tmp_path / "spool", "00000000000000000001-999-0", lines)
    ledger = Ledger(_config(url, tmp_path / "spool"))
    await ledger.start()
    await ledger.close()
    assert _ids(url) == ["r1", "r2"]
    assert not path.exists() and path.with_suffix(".bad").exists()


async def test_a_live_writers_segment_is_not_replayed_by_another(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    live = Ledger(_config(url, tmp_path / "spool", flush_interval_ms=60_000))
    await live.start()
    live.record(request(1))
    other = Ledger(_config(url, tmp_path / "spool"))
    await other.start()  # sees live's locked segment and leaves it alone
    await other.close()
    assert _ids(url) == []
    assert len(spool.leftovers(tmp_path / "spool")) == 1
    await live.close()
    assert _ids(url) == ["r1"]


async def test_rows_survive_a_database_that_is_down(pg_url: str, tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"postgresql://postgres@127.0.0.1:{s.getsockname()[1]}/test"
    down = Ledger(_config(dead, tmp_path / "spool", flush_interval_ms=10))
    await down.start()
    for i in range(3):
        down.record(request(i), [attempt(i)])
    await asyncio.sleep(0.1)  # several failed flushes
    await down.close()
    assert len(spool.leftovers(tmp_path / "spool")) >= 1
    up = Ledger(_config(pg_url, tmp_path / "spool"))
    await up.start()
    await up.close()
    assert _ids(pg_url) == ["r0", "r1", "r2"]
    assert spool.leftovers(tmp_path / "spool") == []


class FlakyStore:
    """A real SQLite store whose first ``failures`` inserts fail as if the database were locked. The
    writer closes a store after a failure and asks the factory again: this one reopens on next use."""

    def __init__(self, url: str, failures: int) -> None:
        self.url = url
        self.inner = open_store(url)
        self.failures = failures

    def insert(self, requests, attempts):  # type: ignore[no-untyped-def]
        self._maybe_fail()
        return self._open().insert(requests, attempts)

    def insert_values(self, requests, attempts):  # type: ignore[no-untyped-def]
        self._maybe_fail()
        return self._open().insert_values(requests, attempts)

    def _open(self):  # type: ignore[no-untyped-def]
        if self.inner is None:
            self.inner = open_store(self.url)
        return self.inner

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
            self.inner = None


async def test_failed_batches_are_retried_from_the_spool(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    flaky = FlakyStore(url, failures=2)

    def factory(_: str) -> LedgerStore:
        return flaky  # type: ignore[return-value]

    ledger = Ledger(_config(url, tmp_path / "spool", flush_interval_ms=10), store_factory=factory)
    await ledger.start()
    with caplog.at_level(logging.WARNING, logger="modelyard.ledger"):
        ledger.record(request(1))
        await asyncio.sleep(0.03)
        ledger.record(request(2))  # recorded while the first batch waits in the backlog
        deadline = time.monotonic() + 5
        while flaky.failures or ledger.queued or spool.leftovers(tmp_path / "spool"):
            assert time.monotonic() < deadline, "the backlog was not retried"
            await asyncio.sleep(0.01)
    await ledger.close()
    assert _ids(url) == ["r1", "r2"]
    assert "rows stay in the spool" in caplog.text


async def test_rows_the_database_refuses_are_set_aside_not_retried_forever(
    store_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(_config(store_url, tmp_path / "spool", flush_interval_ms=10))
    await ledger.start()
    ledger.record(request(1))
    ledger.record(request(2, model=None))  # breaks NOT NULL: no retry can store it
    ledger.record(request(3, cost_pico_usd=2**63))  # beyond BIGINT
    ledger.record(request(4))
    deadline = time.monotonic() + 5
    while not list((tmp_path / "spool").glob("*.rejected")):
        assert time.monotonic() < deadline, "the refused rows were not set aside"
        await asyncio.sleep(0.01)
    ledger.record(request(5))  # later rows are not held up behind them
    await ledger.close()
    assert _ids(store_url) == ["r1", "r4", "r5"]
    [rejected] = (tmp_path / "spool").glob("*.rejected")
    assert [spool.decode_line(line)[1].request_id for line in rejected.read_bytes().splitlines()] == [
        "r2",
        "r3",
    ]
    assert spool.leftovers(tmp_path / "spool") == []


async def test_record_is_cheap(tmp_path: Path) -> None:
    """record() is on the request path: it must cost microseconds, not a database round trip."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(_config(url, tmp_path / "spool", flush_interval_ms=60_000, batch_size=100_000))
    rows = [(request(i), [attempt(i)]) for i in range(2000)]
    started = time.perf_counter()
    for row, attempts in rows:
        ledger.record(row, attempts)
    per_call_us = (time.perf_counter() - started) / len(rows) * 1e6
    await ledger.start()
    await ledger.close()
    assert len(_ids(url)) == 2000
    # Typically ~3-6 µs here; the bound is loose because the machine is shared.
    assert per_call_us < 100, f"record() took {per_call_us:.1f} µs"


def test_default_spool_dir() -> None:
    assert default_spool_dir("sqlite:////var/lib/my/ledger.db") == Path("/var/lib/my/ledger.db.spool")
    assert default_spool_dir("postgresql://db/x") == Path(".modelyard/spool")
    assert default_spool_dir("sqlite:///:memory:") == Path(".modelyard/spool")


def test_an_older_schemas_line_gets_the_new_columns_defaults() -> None:
    """Columns are only ever appended: a line from an older version is a prefix of today's values."""
    row, first = request(1), attempt(1)
    line = spool.encode_line(row, [first])
    version, values, attempts = spool.decode_values(line)
    assert (
        version == spool.SCHEMA_VERSION
        and values == tuple(getattr(row, c) for c in REQUEST_COLUMNS)
        and len(attempts) == 1
    )
    older = orjson.loads(line)
    older[1] = older[1][:-1]  # the newest request column did not exist yet
    _, values, _ = spool.decode_values(orjson.dumps(older))
    newest = fields(RequestRow)[-1]
    assert values is not None and values[-1] == newest.default and values[:-1] == tuple(older[1])
    _, decoded, _ = spool.decode_line(orjson.dumps(older))
    assert getattr(decoded, newest.name) == newest.default and decoded.request_id == row.request_id
    older[1] = older[1][:2]  # required columns missing: malformed, not silently stored
    with pytest.raises(ValueError):
        spool.decode_values(orjson.dumps(older))
