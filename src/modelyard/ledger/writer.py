"""The ledger writer: rows leave the request path in microseconds and reach the database in batches.

:meth:`Ledger.record` (:meth:`Ledger.record_values` on the gateway's path) appends the request's line to
the current spool segment; it never touches the database. A background task wakes every
``flush_interval_ms`` (or as soon as ``batch_size`` requests wait) and *rotates* the segment: the closed
segment holds exactly the rows recorded since the last rotation.

Who stores a closed segment depends on ``ledger.writer``:

- ``process`` (the default): the ingester process (:mod:`modelyard.ledger.ingester`), started here, is poked
  through a pipe; it claims the segment, inserts it, deletes it. Nothing of the database runs in the
  gateway's process, and no row is held in its memory.
- ``thread``: rows are also queued in memory and inserted by a worker thread; the segment is deleted once
  they are committed.

If an insert fails (database down) the segment stays on disk and is retried with growing back-off, so rows
are never lost and memory does not grow while the database is away. Leftover segments (from a crash or an
outage) are stored first when a Ledger starts. :meth:`Ledger.record` must be called on the event loop's
thread, like the gateway's handlers are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from modelyard.config.schema import LedgerConfig
from modelyard.ledger import spool
from modelyard.ledger.ingester import Ingester, backoff_s, redact_url
from modelyard.ledger.schema import AttemptRow, RequestRow, Values
from modelyard.ledger.store import LedgerStore, RequestFilter, open_store, sqlite_path

Read = TypeVar("Read")

log = logging.getLogger("modelyard.ledger")

#: While the spool cannot be written, one ERROR line at the first failure, then a summary this often
#: (not one line per request: a full disk under load would flood the log it shares the disk with).
SPOOL_REPORT_EVERY_S = 60.0
INGESTER_MAIN = "import sys; from modelyard.ledger.ingester import main; sys.exit(main(sys.argv[1:]))"
#: How long close() waits for the ingester process to store the last segments.
INGESTER_EXIT_TIMEOUT_S = 60.0


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
        self.in_process = config.writer == "thread"
        self._ingester = Ingester(config.url, store_factory)
        #: Rows only held here: all of them with the thread writer; with the process writer, only rows the
        #: spool could not take (a full disk), stored from a thread rather than lost.
        self._requests: list[RequestRow] = []
        self._attempts: list[AttemptRow] = []
        self._segment: spool.SpoolSegment | None = None
        #: Ids of queued rows that are in no spool file (a failed append): only memory holds them.
        self._unspooled: set[str] = set()
        self._trouble = SpoolTrouble(self.spool_dir)
        #: Closed segments the thread writer could not store yet; retried from disk.
        self._backlog: list[Path] = []
        self._failures = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None

    def record(self, request: RequestRow, attempts: Sequence[AttemptRow] = ()) -> None:
        """Spool (and with the thread writer, queue) one request's rows. Never waits on the database."""
        self._append(spool.encode_line(request, attempts), request, attempts)

    def record_values(self, request: Values, attempts: Sequence[AttemptRow] = ()) -> None:
        """:meth:`record` for a request held as its values in ``REQUEST_COLUMNS`` order: the gateway's
        path, which builds no request row object (a row is built here only if memory must hold it)."""
        line = spool.encode_request(request, attempts)
        segment = self._segment
        if segment is None or self.in_process or self._trouble.failing:
            self._append(line, request, attempts)
            return
        # The usual case, written out (it runs for every request): a healthy segment open, the ingester
        # process storing it. The same steps as ``_append`` with the branches that cannot apply left out.
        try:
            segment.append(line)
        except OSError as exc:
            self._spool_failed(exc, request, attempts)
            return
        if segment.rows + len(self._requests) >= self.config.batch_size and not self._failures:
            self._wake.set()

    def _append(self, line: bytes, request: RequestRow | Values, attempts: Sequence[AttemptRow]) -> None:
        try:
            segment = self._segment or self._open_segment()
            segment.append(line)
        except OSError as exc:
            self._spool_failed(exc, request, attempts)
            return
        if self._trouble.failing:
            self._trouble.recovered()
        if self.in_process:
            self._hold(request, attempts)
        if self.queued >= self.config.batch_size and not self._failures:
            self._wake.set()

    def _spool_failed(
        self, exc: OSError, request: RequestRow | Values, attempts: Sequence[AttemptRow]
    ) -> None:
        """A full or read-only disk must not fail the client's request: the row still goes to the database
        with this batch (memory holds it), it is just not crash-safe."""
        self._trouble.failed(exc)
        if self._segment is not None and self._segment.torn:
            self._retire(self._segment)
        self._unspooled.add(self._hold(request, attempts).request_id)
        if self.queued >= self.config.batch_size and not self._failures:
            self._wake.set()

    def _hold(self, request: RequestRow | Values, attempts: Sequence[AttemptRow]) -> RequestRow:
        """Keep a request's rows in memory until the next batch stores them."""
        row = request if isinstance(request, RequestRow) else RequestRow(*request)
        self._requests.append(row)
        self._attempts.extend(attempts)
        return row

    @property
    def queued(self) -> int:
        """Requests recorded but not yet handed on to be stored."""
        if self.in_process:
            return len(self._requests)
        return (self._segment.rows if self._segment else 0) + len(self._requests)

    async def start(self) -> None:
        """Store leftover spool segments (or start the ingester process, which does), then the flusher."""
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.in_process:
            mine = self._segment.path if self._segment else None
            self._backlog = [path for path in spool.leftovers(self.spool_dir) if path != mine]
            if self._backlog:
                log.info("ledger: replaying %d spool segment(s) from %s", len(self._backlog), self.spool_dir)
                await self._flush()
        else:
            await self._start_ingester()
        self._task = asyncio.create_task(self._run(), name="ledger-flusher")

    async def close(self) -> None:
        """Store everything still queued and close the store. Rows that cannot be stored stay spooled."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        else:
            await self._flush()
        await self._stop_ingester()
        if self._requests:
            self._spool_the_rest()
        elif self._backlog:
            log.warning("ledger: database unavailable; rows kept in %s for the next start", self.spool_dir)
        await asyncio.to_thread(self._ingester.close)

    def _spool_the_rest(self) -> None:
        """At close, rows only memory holds (the spool failed, then the database): spool them if the disk
        has room again, and say truthfully whether they were kept or lost."""
        by_request: dict[str, list[AttemptRow]] = {}
        for row in self._attempts:
            by_request.setdefault(row.request_id, []).append(row)
        count = len(self._requests)
        try:
            segment = spool.SpoolSegment(self.spool_dir)
            for request in self._requests:
                segment.append(spool.encode_line(request, by_request.get(request.request_id, ())))
            segment.release()
        except OSError as exc:
            log.error(
                "ledger: %d row(s) LOST: the database and the spool in %s both refused them (%s)",
                count,
                self.spool_dir,
                exc,
            )
        else:
            log.warning(
                "ledger: database unavailable; %d row(s) kept in %s for the next start", count, self.spool_dir
            )
        self._requests, self._attempts = [], []

    async def _run(self) -> None:
        while not self._closing:
            # The flush interval, longer after each failure; close() (and a full batch) wakes us early.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._backoff())
            self._wake.clear()
            await self._flush()
        await self._flush()

    def _backoff(self) -> float:
        return backoff_s(self.config.flush_interval_ms / 1000, self._failures)

    async def _flush(self) -> None:
        """Hand the current segment on; store the backlog and in-memory rows. A failure leaves rows
        spooled (or queued) and arms the back-off."""
        if not self.in_process:
            await self._hand_off()
        try:
            if self._backlog:
                self._backlog, error = await asyncio.to_thread(self._ingester.ingest, self._backlog)
                if error is not None:
                    raise error
            if self._requests:
                await self._flush_queue()
        except Exception as exc:  # any failure of the database or its driver: keep the rows, retry later
            self._failures += 1
            log.warning(
                "ledger: cannot write to %s (%s: %s); rows stay in the spool, retrying in %.1fs",
                redact_url(self.config.url),
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
        requests, attempts = self._requests, self._attempts
        segment = self._segment if self.in_process else None
        self._requests, self._attempts = [], []
        if self.in_process:
            self._segment = None
        try:
            await asyncio.to_thread(self._ingester.insert, requests, attempts)
        except BaseException:
            if segment is not None:
                segment.release()
                self._backlog.append(segment.path)
            # Rows the spool could not take exist only here: keep them queued.
            unspooled = self._unspooled
            self._requests[:0] = [r for r in requests if r.request_id in unspooled]
            self._attempts[:0] = [a for a in attempts if a.request_id in unspooled]
            raise
        self._unspooled.difference_update(r.request_id for r in requests)
        if segment is not None:
            segment.delete()

    # -- the ingester process -------------------------------------------------------------------------

    async def _start_ingester(self) -> None:
        # Not ``-m modelyard.ledger.ingester``: this package imports that module, which runpy warns about.
        command = [sys.executable, "-c", INGESTER_MAIN, "--url", self.config.url]
        command += ["--spool-dir", str(self.spool_dir), "--interval-ms", str(self.config.flush_interval_ms)]
        self._process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE)

    async def _hand_off(self) -> None:
        """Close the current segment (its lock goes with it) and poke the ingester to store it."""
        segment = self._segment
        if segment is None:
            return
        self._segment = None
        segment.release()
        process = self._process
        if process is None:
            return
        if process.returncode is not None:
            log.error("ledger: the ingester process exited (%s); starting another", process.returncode)
            await self._start_ingester()
            process = self._process
        assert process is not None and process.stdin is not None
        with contextlib.suppress(ConnectionError):
            process.stdin.write(b"\n")

    async def _stop_ingester(self) -> None:
        """End of input: the ingester stores what is left, then exits."""
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), INGESTER_EXIT_TIMEOUT_S)
        except TimeoutError:
            log.error(
                "ledger: the ingester did not finish in %.0fs; its rows stay spooled", INGESTER_EXIT_TIMEOUT_S
            )
            process.kill()
            await process.wait()

    # -- reads ----------------------------------------------------------------------------------------

    async def usage(self, tenant: str, since: float = 0.0) -> list[dict[str, Any]]:
        """One tenant's figures per workload and model, read from the store (the last flush interval's
        rows may not be there yet). Never another tenant's: the filter is on the tenant column."""
        groups = await self.read(
            lambda store: store.summary(("workload", "model"), RequestFilter(since=since, tenant=tenant))
        )
        return [group.to_dict() for group in groups]

    async def read(self, query: Callable[[LedgerStore], Read]) -> Read:
        """``query`` run on the store in a worker thread, off the event loop. A failure (the database is
        away) drops the store so that the next read opens it afresh, and is raised."""

        def run() -> Read:
            try:
                return query(self._ingester.store)
            except ValueError:
                raise  # the query itself was refused (out of bounds): the store is fine
            except Exception:
                self._ingester.reopen_later()
                raise

        return await asyncio.to_thread(run)

    def _retire(self, segment: spool.SpoolSegment) -> None:
        """A segment with a torn tail takes no more lines: close it and store it like a closed one (its
        torn last line is skipped, the lines before it are stored)."""
        self._segment = None
        segment.release()
        if self.in_process:  # its rows are queued too; storing them twice is harmless (stores skip them)
            self._backlog.append(segment.path)

    def _open_segment(self) -> spool.SpoolSegment:
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._segment = spool.SpoolSegment(self.spool_dir)
        return self._segment


class SpoolTrouble:
    """The log of a spool that cannot be written: the first failure, a summary every
    ``SPOOL_REPORT_EVERY_S``, and the recovery, rather than a line per request."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.failing = False
        self._count = 0
        self._reported_at = 0.0
        self._unreported = 0

    def failed(self, error: OSError) -> None:
        now = time.monotonic()
        self._count += 1
        if not self.failing:
            self.failing, self._reported_at, self._unreported = True, now, 0
            log.error(
                "ledger: cannot write the spool in %s (%s); rows are kept in memory until it can "
                "(not crash-safe meanwhile; summarised every %.0fs)",
                self.directory,
                error,
                SPOOL_REPORT_EVERY_S,
            )
            return
        self._unreported += 1
        if now - self._reported_at >= SPOOL_REPORT_EVERY_S:
            log.error(
                "ledger: the spool in %s still cannot be written (%s); %d more row(s) kept in memory only",
                self.directory,
                error,
                self._unreported,
            )
            self._reported_at, self._unreported = now, 0

    def recovered(self) -> None:
        log.warning(
            "ledger: the spool in %s is writable again; %d row(s) were kept in memory meanwhile",
            self.directory,
            self._count,
        )
        self.failing, self._count = False, 0
