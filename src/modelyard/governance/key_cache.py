"""The runtime keys a gateway process authenticates with: a snapshot of every active key in the key store
(the ledger database), by the SHA-256 of the key a client presents.

- The snapshot is trusted for ``ttl_s`` seconds (``governance.key_cache_ttl_s``, 5 by default, at most
  60) from the moment its read began, so a revocation or rotation made by any process, on any replica
  sharing the database, stops the old key everywhere within that bound.
- A key the snapshot does not hold reloads it at once, at most once per ``MISS_REFRESH_S`` (a flood of
  made-up ``myd-...`` keys costs one query per interval; within it they are refused from the snapshot),
  so a key created on another replica works on its first use after that interval.
- A write through this process's :class:`~modelyard.governance.keys.KeyStore` (the admin API) reloads at
  once: a key created, revoked or rotated here is answered accordingly by the next request.

In a gateway (:meth:`KeyCache.start_refreshing`) the periodic reads run in a thread of the cache's own,
one at a time, every ``ttl_s / 2``. A lookup of a known key only reads the snapshot in memory, so a store
across the network (PostgreSQL) does not stall the event loop (only the missing-key read above runs in
the caller's thread); should the reads fail or lag until
the snapshot is ``ttl_s`` old, runtime keys are refused with 503 ``key_store_unavailable`` rather than
answered from it (the revocation bound holds). Without the thread (the CLI, tests) a lookup that finds
the snapshot too old reloads it inline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from modelyard.errors import ModelyardError
from modelyard.governance.keys import KeyRecord, KeyStore, hash_key, record_of

log = logging.getLogger("modelyard.governance")

#: A key missing from the snapshot reloads it at most this often (seconds): a flood of made-up keys
#: costs one query per interval, and a key created on another replica works within it.
MISS_REFRESH_S = 1.0


class KeyStoreUnavailable(ModelyardError):
    """The snapshot of runtime keys is older than its TTL: the key store has not answered in time."""

    status = 503
    type = "api_error"
    code = "key_store_unavailable"


class KeyCache:
    """The active runtime keys, trusted for ``ttl_s`` seconds of ``clock`` after each read of ``store``."""

    def __init__(
        self, store: KeyStore, *, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl_s
        self._miss_refresh = min(MISS_REFRESH_S, ttl_s)
        self._clock = clock
        self._records: dict[str, KeyRecord] = {}
        #: Each key's row as last read: an unchanged row keeps its parsed record (no pydantic per reload).
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._loaded_at = float("-inf")
        #: One read at a time, installed in the order the reads began (a late one never undoes a newer).
        self._reload_lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        #: Set by a lookup that wants a reload sooner than the next one due.
        self._wake = threading.Event()
        self._stop = threading.Event()
        store.on_change(self._written)

    def lookup(self, key: str) -> KeyRecord | None:
        """The active key record for ``key``; None for an unknown, revoked or rotated-away key."""
        digest = hash_key(key)
        age = self._clock() - self._loaded_at
        record = self._records.get(digest)
        wanted = age >= self._ttl or (record is None and age >= self._miss_refresh)
        if not wanted:
            return record
        if self._refresher is None:
            self.reload()
            return self._records.get(digest)
        if age >= self._ttl:
            self._wake.set()
            raise KeyStoreUnavailable(
                f"the runtime keys could not be read from the ledger database for {age:.1f} s"
                f" (key_cache_ttl_s is {self._ttl:g}); retry shortly, or check the database",
            )
        # A key the snapshot lacks, and no reload for MISS_REFRESH_S: read now, in this thread, so that a
        # key created on another replica is accepted on its first use (answering 401 while the thread
        # reloads made clients that create a key and use it at once fail). At most one such read per
        # interval whatever the flood of made-up keys; the periodic reloads stay off the event loop.
        try:
            self.reload()
        except Exception as exc:
            raise KeyStoreUnavailable(
                f"the runtime keys could not be read from the ledger database ({type(exc).__name__});"
                " retry shortly, or check the database"
            ) from exc
        return self._records.get(digest)

    def reload(self) -> None:
        """Read every active key from the store and install the snapshot (runs in the caller's thread)."""
        with self._reload_lock:
            began = self._clock()
            rows = self._store.active_records()
            records: dict[str, KeyRecord] = {}
            for row in rows:
                digest = str(row[0])
                kept = self._records.get(digest)
                same = kept is not None and self._rows.get(digest) == row
                records[digest] = kept if same and kept is not None else record_of(row[1:])
            self._records, self._rows = records, {str(row[0]): row for row in rows}
            self._loaded_at = began

    def start_refreshing(self) -> None:
        """Load now, then keep the snapshot fresh from a thread of its own: lookups never read the store."""
        self.reload()
        self._refresher = threading.Thread(target=self._refresh, name="modelyard-key-cache", daemon=True)
        self._refresher.start()

    def close(self) -> None:
        """Stop the refreshing thread (waits for a read under way)."""
        self._stop.set()
        self._wake.set()
        if self._refresher is not None:
            self._refresher.join()

    def _written(self) -> None:
        """A key was created, revoked, rotated or re-limited through this process's store: reload now."""
        try:
            self.reload()
        except Exception:
            self._loaded_at = float("-inf")  # never answer from the snapshot the write made wrong
            self._wake.set()
            raise

    def _refresh(self) -> None:
        interval = self._ttl / 2  # a read may take up to ttl/2 before the snapshot expires
        while not self._stop.is_set():
            due = self._loaded_at + interval - self._clock()
            woken = self._wake.wait(min(max(due, 0.0), interval))
            self._wake.clear()
            if self._stop.is_set():
                return
            age = self._clock() - self._loaded_at
            if age < interval and (not woken or age < self._miss_refresh):
                continue  # not due, and a missing key asked sooner than a miss may reload
            try:
                self.reload()
            except Exception as exc:  # the database is away: keep trying, lookups refuse past the TTL
                log.warning("runtime keys: the key store cannot be read (%s: %s)", type(exc).__name__, exc)
                self._stop.wait(min(interval, MISS_REFRESH_S))
