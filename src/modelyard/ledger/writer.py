"""The ledger writer: rows leave the request path in microseconds and reach the database in batches.

:meth:`Ledger.record` appends the request's line to the current spool segment and queues its rows; it
never touches the database. A background task wakes every ``flush_interval_ms`` (or as soon as
``batch_size`` requests wait), takes every queued row and *rotates* the segment in the same synchronous
step, so the batch is exactly the closed segment's rows. A worker thread inserts the batch; only then is
the segment deleted. If the insert fails (database down) the segment stays on disk and is replayed from
there with growing back-off, so rows are never lost and memory does not grow while the database is away.
On :meth:`Ledger.start` every leftover segment (from a crash or an outage) is replayed first.

:meth:`Ledger.record` must be called on the event loop's thread, like the gateway's handlers are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelyard.config.schema import LedgerConfig
from modelyard.ledger import spool
from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.ledger.store import LedgerStore, RequestFilter, RowsRejected, open_store, sqlite_path

log = logging.getLogger("modelyard.ledger")

#: Longest wait between two attempts while the database is unreachable.
MAX_BACKOFF_S = 30.0


def default_spool_dir(url: str) -> Path:
    """``<db file>.spool/`` beside a SQLite file; otherwise ``.modelyard/spool`` in the working directory."""
    if url.startswith("sqlite:///") and sqlite_path(url) != ":memory:":
        db = Path(sqlite_path(url))
        return db.with_name(db.name + ".spool")
    return Path(".modelyard") / "spool"


class Ledger:
    """Records requests off the request path. Use ``await start()`` once, ``record()``, ``await close()``."""

    def __init__(
        self, config: LedgerConfig, *, store_factory: Callable[[str], LedgerStore] = open_store
    ) -> None:
        self.config = config
        self.spool_dir = Path(config.spool_dir) if config.spool_dir else default_spool_dir(config.url)
        self._store_factory = store_factory
        self._store: LedgerStore | None = None
        self._requests: list[RequestRow] = []
        self._attempts: list[AttemptRow] = []
        self._segment: spool.SpoolSegment | None = None
        #: Closed segments whose insert failed; retried from disk.
        self._backlog: list[Path] = []
        self._failures = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def record(self, request: RequestRow, attempts: Sequence[AttemptRow] = ()) -> None:
        """Spool and queue one request's rows. Synchronous and cheap; never waits on the database."""
        line = spool.encode_line(request, attempts)
        try:
            segment = self._segment or self._open_segment()
            segment.append(line)
        except OSError as exc:
            # A full or read-only disk must not fail the client's request: the row still goes to the
            # database with this batch, it is just not crash-safe.
            log.error(
                "ledger: cannot write the spool in %s (%s); row kept in memory only", self.spool_dir, exc
            )
        self._requests.append(request)
        self._attempts.extend(attempts)
        if len(self._requests) >= self.config.batch_size and not self._failures:
            self._wake.set()

    @property
    def queued(self) -> int:
        """Requests recorded but not yet handed to the database."""
        return len(self._requests)

    async def start(self) -> None:
        """Replay leftover spool segments, then start the background flusher."""
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        mine = self._segment.path if self._segment else None
        self._backlog = [path for path in spool.leftovers(self.spool_dir) if path != mine]
        if self._backlog:
            log.info("ledger: replaying %d spool segment(s) from %s", len(self._backlog), self.spool_dir)
            await self._flush()
        self._task = asyncio.create_task(self._run(), name="ledger-flusher")

    async def close(self) -> None:
        """Flush everything still queued and close the store. Rows that cannot be stored stay spooled."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        else:
            await self._flush()
        if self._requests or self._backlog:
            log.warning("ledger: database unavailable; rows kept in %s for the next start", self.spool_dir)
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None

    async def _run(self) -> None:
        while not self._closing:
            # The flush interval, longer after each failure; close() (and a full batch) wakes us early.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._backoff())
            self._wake.clear()
            await self._flush()
        await self._flush()

    def _backoff(self) -> float:
        return min(MAX_BACKOFF_S, self.config.flush_interval_ms / 1000 * 2.0 ** min(self._failures, 16))

    async def _flush(self) -> None:
        """Store the backlog, then the queued rows. A failure leaves rows spooled and arms the back-off."""
        try:
            if self._backlog:
                self._backlog, error = await asyncio.to_thread(self._replay, self._backlog)
                if error is not None:
                    raise error
            if self._requests:
                await self._flush_queue()
        except Exception as exc:  # any failure of the database or its driver: keep the rows, retry later
            self._failures += 1
            log.warning(
                "ledger: cannot write to %s (%s: %s); rows stay in the spool, retrying in %.1fs",
                _redact(self.config.url),
                type(exc).__name__,
                exc,
                self._backoff(),
            )
        else:
            if self._failures:
                log.info("ledger: database reachable again; spool drained")
            self._failures = 0

    async def _flush_queue(self) -> None:
        # Taking the rows and closing their segment happen in one synchronous step on the loop: no record()
        # can run in between, so the batch is exactly the closed segment's rows.
        requests, attempts, segment = self._requests, self._attempts, self._segment
        self._requests, self._attempts, self._segment = [], [], None
        try:
            await asyncio.to_thread(self._insert, requests, attempts)
        except BaseException:
            if segment is not None:
                segment.release()
                self._backlog.append(segment.path)
            else:  # the spool was unwritable: these rows exist only here, so keep them queued
                self._requests[:0], self._attempts[:0] = requests, attempts
            raise
        if segment is not None:
            segment.delete()

    def _replay(self, paths: list[Path]) -> tuple[list[Path], Exception | None]:
        """Store leftover segments, oldest first (in a worker thread).

        Returns the segments still to store and the error that stopped the replay, if any.
        """
        for index, path in enumerate(paths):
            claimed = spool.claim(path)
            if claimed is None:  # a live writer owns it, or another replayer finished it
                continue
            try:
                try:
                    self._insert(claimed.requests, claimed.attempts)
                except RowsRejected as exc:
                    self._insert_one_by_one(claimed, exc)
            except Exception as exc:
                claimed.release()
                return paths[index:], exc
            claimed.done()
        return [], None

    def _insert_one_by_one(self, claimed: spool.Claimed, error: RowsRejected) -> None:
        """The database refused part of a segment: store what it accepts, set the rest aside.

        Retrying a row that breaks a constraint can never succeed, and would hold up every row behind it.
        """
        attempts: dict[str, list[AttemptRow]] = {}
        for row in claimed.attempts:
            attempts.setdefault(row.request_id, []).append(row)
        rejected = []
        for request in claimed.requests:
            try:
                self._insert([request], attempts.get(request.request_id, []))
            except RowsRejected:
                rejected.append(spool.encode_line(request, attempts.get(request.request_id, [])))
        kept = claimed.path.with_suffix(".rejected")
        with open(kept, "ab") as file:
            file.writelines(rejected)
        log.error("ledger: the database refused %d row(s) (%s); kept in %s", len(rejected), error, kept)

    async def usage(self, tenant: str, since: float = 0.0) -> list[dict[str, Any]]:
        """One tenant's figures per workload and model, read from the store (the last flush interval's
        rows may not be there yet). Never another tenant's: the filter is on the tenant column."""

        def read() -> list[dict[str, Any]]:
            if self._store is None:
                self._store = self._store_factory(self.config.url)
            groups = self._store.summary(("workload", "model"), RequestFilter(since=since, tenant=tenant))
            return [group.to_dict() for group in groups]

        return await asyncio.to_thread(read)

    def _insert(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> None:
        if self._store is None:
            self._store = self._store_factory(self.config.url)
        self._store.insert(requests, attempts)

    def _open_segment(self) -> spool.SpoolSegment:
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._segment = spool.SpoolSegment(self.spool_dir)
        return self._segment


def _redact(url: str) -> str:
    """The URL without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}@{host}"
