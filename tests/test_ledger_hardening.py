"""The ledger facing an unwritable database and a full disk (issue 13 rows 10 and 11): rows are never
lost, the store is reopened once the database is writable again, the spool never appends after torn
bytes, and what the logs say at shutdown is what happened."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import pytest

from modelyard.config.schema import LedgerConfig
from modelyard.ledger import spool
from modelyard.ledger.ingester import Ingester
from modelyard.ledger.store import open_store
from modelyard.ledger.writer import Ledger
from tests.ledger_support import attempt, request


def stored_ids(url: str) -> list[str]:
    store = open_store(url)
    try:
        return [r.request_id for r in store.query(newest_first=False)]
    finally:
        store.close()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` unwritable for SQLite: mode 0444 for an ordinary user; for root (who writes through
    modes), the immutable attribute."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("cannot make a file read-only for root here (no chattr, or no CAP_LINUX_IMMUTABLE)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def put(ledger: Ledger, i: int, via: str) -> None:
    """Record request ``i`` as a row object (``record``) or as its values (``record_values``, the
    gateway's path, which has its own fast path for a healthy spool)."""
    if via == "values":
        ledger.record_values(astuple(request(i)), [attempt(i)])
    else:
        ledger.record(request(i), [attempt(i)])


def spool_rows(directory: Path, ids: range) -> None:
    directory.mkdir(exist_ok=True)
    segment = spool.SpoolSegment(directory)
    for i in ids:
        segment.append(spool.encode_line(request(i), [attempt(i)]))
    segment.release()


# -- row 10: a database read-only when the ingester opened it ---------------------------------------------


def test_the_store_is_reopened_once_the_database_is_writable_again(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    open_store(url).close()  # the schema exists; the file is then made read-only
    spool_dir = tmp_path / "spool"
    spool_rows(spool_dir, range(3))
    ingester = Ingester(url)
    try:
        with read_only(db):
            left, error = ingester.ingest(spool.leftovers(spool_dir))
            assert error is not None and len(left) == 1, "nothing stored while read-only"
        left, error = ingester.ingest(spool.leftovers(spool_dir))
        assert error is None and left == [], f"the store was not reopened: {error}"
    finally:
        ingester.close()
    assert stored_ids(url) == ["r0", "r1", "r2"]
    assert spool.leftovers(spool_dir) == []


# -- row 11: a full disk ------------------------------------------------------------------------------------


class FullDisk:
    """The spool's one system call, failing as a full disk does: ``torn`` writes put the first half of
    their bytes on disk for real and report it (a short write); ``refused`` ones raise ENOSPC."""

    def __init__(self) -> None:
        self.mode = "ok"

    def __call__(self, fd: int, data: bytes) -> int:
        if self.mode == "torn":
            return os.write(fd, data[: len(data) // 2])
        if self.mode == "refused":
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    full = FullDisk()
    monkeypatch.setattr(spool, "_write", full)
    return full


def ledger_config(tmp_path: Path, url: str | None = None, writer: str = "process") -> LedgerConfig:
    return LedgerConfig(
        url=url or f"sqlite:///{tmp_path / 'ledger.db'}",
        spool_dir=str(tmp_path / "spool"),
        flush_interval_ms=20,
        writer=writer,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("via", ["row", "values"])
@pytest.mark.parametrize("writer", ["process", "thread"])
async def test_after_a_torn_spool_write_the_next_rows_are_not_lost(
    tmp_path: Path, disk: FullDisk, writer: str, via: str
) -> None:
    config = ledger_config(tmp_path, writer=writer)
    ledger = Ledger(config)
    await ledger.start()
    put(ledger, 0, via)
    disk.mode = "torn"  # the disk fills in the middle of r1's line
    put(ledger, 1, via)
    disk.mode = "ok"  # space comes back
    put(ledger, 2, via)
    await ledger.close()
    assert stored_ids(config.url) == ["r0", "r1", "r2"]
    spool_dir = tmp_path / "spool"
    assert not list(spool_dir.glob("*.bad")), "no segment set aside as unreadable"
    assert spool.leftovers(spool_dir) == []


def test_a_torn_write_is_cut_back_to_the_last_complete_line(tmp_path: Path, disk: FullDisk) -> None:
    segment = spool.SpoolSegment(tmp_path)
    segment.append(spool.encode_line(request(0), []))
    complete = segment.path.read_bytes()
    for mode in ("torn", "refused"):
        disk.mode = mode
        with pytest.raises(OSError):
            segment.append(spool.encode_line(request(1), []))
        assert segment.path.read_bytes() == complete and not segment.torn
    disk.mode = "ok"
    segment.append(spool.encode_line(request(2), []))
    segment.release()
    claimed = spool.claim(segment.path)
    assert claimed is not None and claimed.bad_lines == []
    assert [values[0] for values in claimed.requests] == ["r0", "r2"]
    claimed.release()


async def test_at_shutdown_rows_nobody_could_take_are_reported_lost(
    tmp_path: Path, disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = tmp_path / "db-is-a-directory"
    unreachable.mkdir()  # SQLite cannot open a directory: the database is away too
    ledger = Ledger(ledger_config(tmp_path, f"sqlite:///{unreachable}"))
    await ledger.start()
    disk.mode = "refused"
    with caplog.at_level(logging.INFO, logger="modelyard.ledger"):
        for i in range(3):
            ledger.record(request(i), [attempt(i)])
        await ledger.close()
    said = [r.getMessage() for r in caplog.records]
    assert any("3 row(s) LOST" in m for m in said), said
    assert not any("kept in" in m and "for the next start" in m for m in said), "no false claim"


async def test_at_shutdown_rows_go_to_the_spool_if_the_disk_has_room_again(
    tmp_path: Path, disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = tmp_path / "db-is-a-directory"
    unreachable.mkdir()
    ledger = Ledger(ledger_config(tmp_path, f"sqlite:///{unreachable}"))
    await ledger.start()
    disk.mode = "refused"
    with caplog.at_level(logging.INFO, logger="modelyard.ledger"):
        for i in range(3):
            ledger.record(request(i), [attempt(i)])
        disk.mode = "ok"
        await ledger.close()
    assert any("3 row(s) kept in" in r.getMessage() for r in caplog.records)
    unreachable.rmdir()
    url = f"sqlite:///{unreachable}"
    later = Ledger(ledger_config(tmp_path, url, writer="thread"))
    await later.start()  # replays the leftovers
    await later.close()
    assert stored_ids(url) == ["r0", "r1", "r2"]


@pytest.mark.parametrize("via", ["row", "values"])
async def test_an_unwritable_spool_logs_once_not_once_per_request(
    tmp_path: Path, disk: FullDisk, caplog: pytest.LogCaptureFixture, via: str
) -> None:
    ledger = Ledger(ledger_config(tmp_path))
    await ledger.start()
    disk.mode = "refused"
    with caplog.at_level(logging.INFO, logger="modelyard.ledger"):
        for i in range(200):
            put(ledger, i, via)
        disk.mode = "ok"
        put(ledger, 200, via)
        await ledger.close()
    spool_lines = [r for r in caplog.records if "spool" in r.getMessage()]
    assert [r.levelno for r in spool_lines] == [logging.ERROR, logging.WARNING], [
        r.getMessage() for r in spool_lines
    ]
    assert "200 row(s) were kept in memory" in spool_lines[1].getMessage()
    assert stored_ids(ledger.config.url) == [f"r{i}" for i in range(201)]


@pytest.mark.parametrize("via", ["row", "values"])
async def test_when_a_torn_write_cannot_be_cut_back_a_new_segment_takes_the_next_rows(
    tmp_path: Path, disk: FullDisk, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    config = ledger_config(tmp_path)
    ledger = Ledger(config)
    await ledger.start()
    put(ledger, 0, via)

    def cannot_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    disk.mode = "torn"
    with monkeypatch.context() as patch:
        patch.setattr(os, "ftruncate", cannot_truncate)
        put(ledger, 1, via)
    disk.mode = "ok"
    put(ledger, 2, via)
    segments = list((tmp_path / "spool").glob("*.jsonl"))
    assert any(b'"r2"' in path.read_bytes() for path in segments), "r2 is spooled (crash-safe) again"
    await ledger.close()
    assert stored_ids(config.url) == ["r0", "r1", "r2"]
    assert not list((tmp_path / "spool").glob("*.bad"))
