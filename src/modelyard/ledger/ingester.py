"""The ingester: stores closed spool segments in the database.

It runs in two places. By default (``ledger.writer: process``) it is a process of its own, started by the
gateway's :class:`~modelyard.ledger.writer.Ledger` at a lower CPU priority: the gateway only appends spool
lines and closes a segment every flush interval, then pokes this process through a pipe; the database
inserts then never contend with request handling for the interpreter lock or the core (measured here: the
in-thread writer pushed the gateway's p99 latency at one connection from ~1 ms to ~4.5 ms). With
``writer: thread`` the Ledger uses :class:`Ingester` from a worker thread instead.

Either way, a segment is claimed (``flock``) before it is read, inserted, and deleted only after the commit,
so rows are never lost and never stored twice (stores skip rows they already hold). While the database is
unreachable, segments stay on disk and the process retries with growing back-off; the gateway's memory does
not grow. The process ends when its pipe closes (the gateway stopped, or died): it stores what it can, then
exits. It ignores SIGTERM and SIGINT, so that stopping the gateway's process group lets it drain first.

    python -c "from modelyard.ledger.ingester import main; main()" --url URL --spool-dir DIR --interval-ms N
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from modelyard.ledger import spool
from modelyard.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS, AttemptRow, RequestRow, Values
from modelyard.ledger.store import LedgerStore, RowsRejected, open_store

log = logging.getLogger("modelyard.ledger")

#: Longest wait between two attempts while the database is unreachable.
MAX_BACKOFF_S = 30.0
#: While the ingester keeps up (no closed segment older than this), it runs only when the CPU would
#: otherwise be idle (Linux SCHED_IDLE). Measured here with the gateway on one core at one connection
#: (the core ~90% busy serving): p99 0.8 ms, as with no ingestion at all, against ~4 ms when the ingester
#: competes at niceness 10 and ~2 ms at 19. Behind by more, it competes at NICENESS, so a core saturated
#: for long cannot starve it: the database then lags by this much at most; the rows are on disk all along.
MAX_LAG_S = 30.0
#: The ingester's niceness when it competes: the gateway's handlers get most of a shared core.
NICENESS = 10


def redact_url(url: str) -> str:
    """The URL without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}@{host}"


_REQUEST_ID = REQUEST_COLUMNS.index("request_id")
_ATTEMPT_ID = ATTEMPT_COLUMNS.index("request_id")


class Ingester:
    """Stores spool segments (and rows handed over directly) in one store, opened on first use."""

    def __init__(self, url: str, store_factory: Callable[[str], LedgerStore] = open_store) -> None:
        self.url = url
        self._store_factory = store_factory
        self._store: LedgerStore | None = None

    @property
    def store(self) -> LedgerStore:
        if self._store is None:
            self._store = self._store_factory(self.url)
        return self._store

    def insert(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> None:
        try:
            self.store.insert(requests, attempts)
        except RowsRejected:
            raise
        except Exception:
            self.reopen_later()
            raise

    def reopen_later(self) -> None:
        """Drop the store after a failure: the next attempt opens it afresh. A connection opened while the
        database was unwritable (a read-only SQLite file, a Postgres failover) stays that way, so retrying
        on it never succeeds."""
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception as exc:  # closing a broken connection may fail too; it is dropped either way
                log.debug("ledger: closing the failed store: %s", exc)

    def ingest(self, paths: list[Path]) -> tuple[list[Path], Exception | None]:
        """Store segments, oldest first. Returns the segments still to store and the error that stopped
        the run, if any. A segment a live writer still holds is skipped."""
        for index, path in enumerate(paths):
            claimed = spool.claim(path)
            if claimed is None:  # a live writer owns it, or another ingester finished it
                continue
            try:
                try:
                    self.store.insert_values(claimed.requests, claimed.attempts)
                except RowsRejected as exc:
                    self._insert_one_by_one(claimed, exc)
            except Exception as exc:
                claimed.release()
                self.reopen_later()
                return paths[index:], exc
            claimed.done()
        return [], None

    def _insert_one_by_one(self, claimed: spool.Claimed, error: RowsRejected) -> None:
        """The database refused part of a segment: store what it accepts, set the rest aside.

        Retrying a row that breaks a constraint can never succeed, and would hold up every row behind it.
        """
        attempts: dict[str, list[Values]] = {}
        for values in claimed.attempts:
            attempts.setdefault(values[_ATTEMPT_ID], []).append(values)
        rejected = []
        for request in claimed.requests:
            mine = attempts.get(request[_REQUEST_ID], [])
            try:
                self.store.insert_values([request], mine)
            except RowsRejected:
                rejected.append(spool.encode_values(request, mine))
        kept = claimed.path.with_suffix(".rejected")
        with open(kept, "ab") as file:
            file.writelines(rejected)
        log.error("ledger: the database refused %d row(s) (%s); kept in %s", len(rejected), error, kept)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def backoff_s(interval_s: float, failures: int) -> float:
    return min(MAX_BACKOFF_S, interval_s * 2.0 ** min(failures, 16))


class Priority:
    """Idle priority while the spool is fresh, ordinary (niced) priority while it lags."""

    def __init__(self) -> None:
        self.supported = hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE")
        self.idle = False

    def follow(self, segments: list[Path]) -> None:
        if not self.supported:
            return
        lag_s = time.time() - spool.started_at(segments[0]) if segments else 0.0
        want_idle = lag_s <= MAX_LAG_S
        if want_idle != self.idle:
            policy = os.SCHED_IDLE if want_idle else os.SCHED_OTHER
            os.sched_setscheduler(0, policy, os.sched_param(0))
            self.idle = want_idle
            if not want_idle:
                log.info("ledger: ingester %.1fs behind; competing for the CPU until it catches up", lag_s)


def run(url: str, spool_dir: Path, interval_s: float, control_fd: int = 0) -> None:
    """Ingest every closed segment in ``spool_dir`` when poked through ``control_fd`` (any byte) or every
    ``interval_s``; return after a last pass once ``control_fd`` reaches end of file."""
    ingester = Ingester(url)
    priority = Priority()
    failures = 0
    ending = False
    try:
        while True:
            segments = spool.leftovers(spool_dir)
            priority.follow(segments)
            _, error = ingester.ingest(segments)
            if error is not None:
                failures += 1
                log.warning(
                    "ledger: cannot write to %s (%s: %s); rows stay in %s, retrying in %.1fs",
                    redact_url(url),
                    type(error).__name__,
                    error,
                    spool_dir,
                    backoff_s(interval_s, failures),
                )
            elif failures:
                log.info("ledger: database reachable again; spool drained")
                failures = 0
            if ending:
                return
            wait = backoff_s(interval_s, failures) if failures else interval_s
            readable, _, _ = select.select([control_fd], [], [], wait)
            if readable and not os.read(control_fd, 65536):
                ending = True
    finally:
        ingester.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelyard ledger ingester", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--spool-dir", required=True, type=Path)
    parser.add_argument("--interval-ms", type=int, default=200)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s (ingester): %(message)s"
    )
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(NICENESS)
    run(args.url, args.spool_dir, args.interval_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
