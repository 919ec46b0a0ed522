"""Stop a run cleanly on SIGTERM (what CI sends when a job is cancelled) and SIGINT (Ctrl-C).

Python's default for SIGTERM ends the process at once, without running ``finally`` blocks; here either
signal cancels the run's task instead, so the calls in flight are abandoned, the adapters closed and the
cache closed before the process exits with the shell's code for that signal (128 + its number). Answers
already received are in the cache either way (it commits each one as it arrives, cache.py): a re-run
pays again only for the calls that were in flight.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """The run was stopped by ``signal``; the process should exit with :attr:`exit_code`."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number


async def until_signalled(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``; SIGTERM or SIGINT cancels it and raises :class:`Interrupted`."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    received: list[int] = []

    def stop(number: int) -> None:
        received.append(number)
        task.cancel()

    for number in SIGNALS:
        loop.add_signal_handler(number, stop, number)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for number in SIGNALS:
            loop.remove_signal_handler(number)
