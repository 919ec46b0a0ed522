"""Budget store calls in batches, and network round trips off the event loop.

The recorder hands each finished request's settlement here (:meth:`Settler.submit`) instead of settling
it on the spot. Everything submitted during one turn of the event loop is settled together, right after
it (``call_soon``): one ``settle_many`` — one SQLite transaction, one Redis pipeline — for the batch.
On the embedded stores the reservations admission makes are batched the same way (:meth:`Settler.hold`:
one ``reserve_many``, one SQLite transaction with a savepoint per request, right after the settlements
of the same turn so that they free their headroom first). Under load a turn carries many requests, so a
commit is shared between them; at one request at a time nothing is gained, and little is lost.

With a network store (PostgreSQL, Redis, or rate limits kept in Redis) a store call is a round trip that
would stall every request on the loop while it waits, so batches run in :attr:`offload`, a small thread
pool, one batch at a time (the next one gathers meanwhile); the reservation at admission runs there too
(``gateway.budgeting.reserve_async``). The embedded SQLite and memory stores stay on the loop: a thread hop
costs more than their local commit.

Until its batch is applied a request's estimate stays reserved, so a settlement running late can refuse a
request too early (never admit one too many). A batch that fails is logged; its reservations expire after
``reservation_ttl_s`` like a crashed worker's (released or charged, as ``on_expiry`` says).
:meth:`close` applies whatever is still queued, so a graceful stop settles every answered request.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

from modelyard.governance.governor import Governor
from modelyard.governance.model import Actual, Reservation, Subject
from modelyard.governance.ratelimit import RateLimiter

log = logging.getLogger("modelyard.governance")

#: Threads for network stores' calls: reservations of concurrent requests wait on the network in
#: parallel (Redis's client pools connections; PostgreSQL's store serialises on its connection).
OFFLOAD_THREADS = 8


class Settlement(NamedTuple):
    reservation: Reservation
    actual: Actual
    subject: Subject
    #: Tokens used beyond the estimate (negative: fewer), for the rate limiter's token count.
    token_delta: int


class Settler:
    """Queues settlements and applies them in batches, on the loop or (network stores) in a thread."""

    def __init__(self, governor: Governor, rate_limiter: RateLimiter | None, *, network: bool) -> None:
        self.governor, self.rate_limiter = governor, rate_limiter
        #: The pool network store calls run in; None for the embedded stores, which run on the loop.
        self.offload = ThreadPoolExecutor(OFFLOAD_THREADS, "budget-store") if network else None
        self._pending: list[Settlement] = []
        #: Reservations waiting for this turn's ``reserve_many`` (embedded stores only).
        self._holds: list[tuple[Reservation, asyncio.Future[int | None]]] = []
        self._scheduled = False
        self._running: Future[None] | None = None

    async def hold(self, reservation: Reservation) -> int | None:
        """Hold ``reservation`` in this turn's batch (embedded stores): the store's answer, ``None`` when
        held or the index of the line refused."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._holds.append((reservation, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if not self._scheduled:
            loop = asyncio.get_running_loop()  # RuntimeError without one: the caller settles at once
            self._scheduled = True
            loop.call_soon(self._flush)

    def submit(self, reservation: Reservation, actual: Actual, subject: Subject, token_delta: int) -> None:
        """Settle after this turn of the event loop (at once when no loop runs: a CLI, a test)."""
        self._pending.append(Settlement(reservation, actual, subject, token_delta))
        if self._scheduled:
            return
        try:
            self._schedule()
        except RuntimeError:  # no event loop running
            self._flush()

    @property
    def queued(self) -> int:
        return len(self._pending)

    def _flush(self) -> None:
        self._scheduled = False
        if self._running is not None:
            return  # a network batch is on its way: this one follows when it is done
        batch, self._pending = self._pending, []
        if self.offload is None:
            if batch:
                self._apply(batch)
            if self._holds:
                self._reserve_held()
            return
        if not batch:
            return
        self._running = running = self.offload.submit(self._apply, batch)
        loop = asyncio.get_running_loop()
        running.add_done_callback(lambda _: loop.call_soon_threadsafe(self._done))

    def _done(self) -> None:
        self._running = None
        if self._pending and not self._scheduled:
            self._flush()

    def _reserve_held(self) -> None:
        holds, self._holds = self._holds, []
        try:
            answers = self.governor.store.reserve_many([reservation for reservation, _ in holds])
        except Exception as exc:
            for _, future in holds:
                if not future.done():
                    future.set_exception(exc)
            return
        for (reservation, future), answer in zip(holds, answers, strict=True):
            if not future.done():
                future.set_result(answer)
            elif answer is None:  # its request was cancelled while it waited: nothing must stay held
                self.submit(reservation, Actual(0, 0, 0), Subject(), 0)

    def _apply(self, batch: list[Settlement]) -> None:
        try:
            self.governor.settle_many([(s.reservation, s.actual) for s in batch])
        except Exception as exc:
            log.error(
                "settling %d request(s) failed (%s: %s): their reservations expire after the TTL",
                len(batch),
                type(exc).__name__,
                exc,
            )
        limiter = self.rate_limiter
        if limiter is None:
            return
        try:
            for s in batch:
                if s.token_delta:
                    limiter.charge(s.subject, s.token_delta)
        except Exception as exc:
            log.error("charging the rate limiter failed (%s: %s)", type(exc).__name__, exc)

    def close(self) -> None:
        """Wait for the batch under way, then apply the rest here and now."""
        running = self._running
        if running is not None:
            running.result()
            self._running = None
        if self._pending:
            batch, self._pending = self._pending, []
            self._apply(batch)
        if self._holds:  # requests admitted in the very last turn: answer them rather than leave them hanging
            self._reserve_held()
            if self._pending:
                batch, self._pending = self._pending, []
                self._apply(batch)
        if self.offload is not None:
            self.offload.shutdown(wait=True)
