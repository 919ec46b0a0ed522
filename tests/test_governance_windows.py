"""Budget windows are pure functions of a timestamp: tables of instants and the window they fall in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from modelyard.governance.config import WindowConfig
from modelyard.governance.windows import window_at


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


CASES = [
    # (window, instant, expected start, expected end)
    ({"kind": "day"}, "2026-12-03T23:59:59+00:00", "2026-12-03T00:00:00+00:00", "2026-12-04T00:00:00+00:00"),
    ({"kind": "day"}, "2026-12-04T00:00:00+00:00", "2026-12-04T00:00:00+00:00", "2026-12-05T00:00:00+00:00"),
    # 23:30 UTC is already tomorrow in Paris.
    (
        {"kind": "day", "timezone": "Europe/Paris"},
        "2026-12-03T23:30:00+00:00",
        "2026-12-04T00:00:00+01:00",
        "2026-12-05T00:00:00+01:00",
    ),
    # The spring-forward day in Paris is 23 hours long; the autumn one 25.
    (
        {"kind": "day", "timezone": "Europe/Paris"},
        "2026-03-29T12:00:00+02:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    ),
    (
        {"kind": "day", "timezone": "Europe/Paris"},
        "2026-10-25T12:00:00+01:00",
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    ),
    (
        {"kind": "month"},
        "2026-02-28T12:00:00+00:00",
        "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00",
    ),
    (
        {"kind": "month"},
        "2026-12-31T23:59:59+00:00",
        "2026-12-01T00:00:00+00:00",
        "2027-01-01T00:00:00+00:00",
    ),
    (
        {"kind": "month", "timezone": "America/New_York"},
        "2026-12-01T03:00:00+00:00",
        "2026-11-01T00:00:00-04:00",
        "2026-12-01T00:00:00-05:00",
    ),
    (
        {"kind": "period", "seconds": 60},
        "2026-12-03T10:00:59.900+00:00",
        "2026-12-03T10:00:00+00:00",
        "2026-12-03T10:01:00+00:00",
    ),
    # A two-week sprint anchored on a Monday morning.
    (
        {"kind": "period", "seconds": 14 * 86400, "anchor": "2026-01-05T09:00:00+00:00"},
        "2026-01-19T08:59:59+00:00",
        "2026-01-05T09:00:00+00:00",
        "2026-01-19T09:00:00+00:00",
    ),
    (
        {"kind": "period", "seconds": 14 * 86400, "anchor": "2026-01-05T09:00:00+00:00"},
        "2026-01-04T00:00:00+00:00",
        "2025-12-22T09:00:00+00:00",
        "2026-01-05T09:00:00+00:00",
    ),
]


@pytest.mark.parametrize(("spec", "at", "start", "end"), CASES)
def test_the_window_containing_an_instant(spec: dict[str, object], at: str, start: str, end: str) -> None:
    window = window_at(WindowConfig.model_validate(spec), ts(at))
    assert (window.start, window.end) == (ts(start), ts(end))
    assert window.start <= ts(at) < window.end
    assert window.resets_at() == datetime.fromisoformat(end).astimezone(UTC)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "day", "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"kind": "period"}, "needs 'seconds'"),
        ({"kind": "month", "seconds": 60}, "belong to 'period' windows"),
        ({"kind": "period", "seconds": 60, "anchor": "2026-01-05T09:00:00"}, "needs a UTC offset"),
        ({"kind": "week"}, "'day', 'month' or 'period'"),
    ],
)
def test_a_bad_window_names_the_fix(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WindowConfig.model_validate(spec)
