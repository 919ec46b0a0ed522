"""Budget windows computed purely from a timestamp: the same instant gives the same window in every
process, so counters keyed by window start agree across workers and replicas without coordination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from modelyard.governance.config import WindowConfig
from modelyard.governance.model import Window

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_at(spec: WindowConfig, at: float) -> Window:
    """The window of ``spec`` that contains the unix time ``at``."""
    # The request path asks for the same few windows over and over: remember the last one of each spec
    # (kept with the spec itself, so a recycled id() can never match another spec).
    last = _last.get(id(spec))
    if last is not None and last[0] is spec and last[1].start <= at < last[1].end:
        return last[1]
    window = _compute(spec, at)
    if len(_last) > 1024:
        _last.clear()
    _last[id(spec)] = (spec, window)
    return window


_last: dict[int, tuple[WindowConfig, Window]] = {}


def _compute(spec: WindowConfig, at: float) -> Window:
    if spec.kind == "period":
        assert spec.seconds is not None  # guaranteed by WindowConfig's validator
        anchor = (spec.anchor or _EPOCH).timestamp()
        start = anchor + ((at - anchor) // spec.seconds) * spec.seconds
        return Window(start, start + spec.seconds, f"period of {spec.seconds} s")
    zone = _zone(spec.timezone)
    local = datetime.fromtimestamp(at, zone)
    if spec.kind == "day":
        first = local.date()
        following = first + timedelta(days=1)
    else:
        first = local.date().replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    # Midnight as wall-clock time in the zone: a DST day is 23 or 25 hours long, as its users see it.
    start = datetime(first.year, first.month, first.day, tzinfo=zone).timestamp()
    end = datetime(following.year, following.month, following.day, tzinfo=zone).timestamp()
    return Window(start, end, f"{spec.kind} ({spec.timezone})")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
