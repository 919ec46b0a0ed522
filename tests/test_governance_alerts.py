"""Budget alerts fire once per window per threshold, whichever process crosses it, to a real loopback
webhook (retried on 5xx) and to the log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from modelyard.governance.alerts import Alert, LogSink, WebhookFailed, WebhookSink, crossed
from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.governor import Governor
from modelyard.governance.model import Actual, CounterState, Subject
from modelyard.governance.store_sqlite import SQLiteBudgetStore
from tests.fakes.common import serve_app

CENT = 10**10
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC

CONFIG = GovernanceConfig.model_validate(
    {
        "budgets": [
            {
                "name": "daily",
                "scope": "tenant",
                "unit": "usd",
                "limit": "1",
                "window": {"kind": "day"},
                "mode": "soft",
            }
        ],
        "alerts": {"thresholds": [80, 50, 100]},
    }
)


@pytest.mark.parametrize(
    ("spent", "limit", "expected"),
    [
        (49, 100, []),
        (50, 100, [50]),
        (80, 100, [50, 80]),
        (130, 100, [50, 80, 100]),
        (0, 0, []),
        (1, 0, [50, 80, 100]),
    ],
)
def test_which_thresholds_a_counter_has_crossed(spent: int, limit: int, expected: list[int]) -> None:
    assert crossed((50, 80, 100), CounterState("c", limit, spent, 0)) == expected


class Hook:
    """A webhook that answers 503 to the first ``failures`` posts, then 204, keeping every body it got."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts <= self.failures:
            return web.Response(status=503)
        assert request.content_type == "application/json"
        self.bodies.append(await request.json())
        return web.Response(status=204)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def test_each_threshold_fires_once_per_window_across_processes_retried_on_5xx(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Hook(failures=2)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    async with serve_app(app) as base:
        sink = WebhookSink(base + "/hook", attempts=5, first_wait_s=0.01)
        clock = Clock()
        # Two gateway processes on one SQLite store: each has its own memory of what it fired.
        stores = [SQLiteBudgetStore(str(tmp_path / "gov.db")) for _ in range(2)]
        govs = [Governor(CONFIG, s, clock=clock, sinks=[sink, LogSink()]) for s in stores]

        def spend(gov: Governor, cents: int) -> None:
            held = gov.reserve(Subject("acme"), Estimate(cents * CENT, 0, 0))
            gov.settle(held, Actual(cost_pico=cents * CENT))

        def run() -> None:
            with caplog.at_level(logging.WARNING, logger="modelyard.governance.alerts"):
                spend(govs[0], 55)  # 55 %: 50 fires
                spend(govs[1], 10)  # 65 %: 50 again in the other process: not fired twice
                spend(govs[1], 20)  # 85 %: 80 fires
                spend(govs[0], 30)  # 115 %: 100 fires (soft budget: nothing refused)
                spend(govs[0], 1)  # nothing new
                clock.now += 86400  # the next day: a new window, thresholds fire again
                spend(govs[1], 60)
            sink.close()

        await asyncio.to_thread(run)
        for s in stores:
            s.close()
    fired = [(b["threshold_percent"], b["spent"], b["window_start"][:10]) for b in hook.bodies]
    assert fired == [
        (50, "0.55", "2027-01-15"),
        (80, "0.85", "2027-01-15"),
        (100, "1.15", "2027-01-15"),
        (50, "0.6", "2027-01-16"),
    ]
    assert hook.attempts == 2 + 4  # the first alert took three tries
    first = hook.bodies[0]
    assert first["type"] == "budget.threshold" and first["budget"] == "daily" and first["subject"] == "acme"
    assert first["limit"] == "1" and first["resets_at"] == "2027-01-16T00:00:00+00:00"
    assert sum("budget alert" in r.message for r in caplog.records) == 4


async def test_a_4xx_is_not_retried_and_an_unreachable_hook_gives_up_after_its_attempts() -> None:
    hook = Hook(failures=0)

    async def refuse(request: web.Request) -> web.Response:
        hook.attempts += 1
        return web.Response(status=400)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    store = SQLiteBudgetStore(":memory:")
    line = Governor(CONFIG, store).reserve(Subject("acme"), Estimate(CENT, 0, 0)).lines[0]
    store.close()
    alert = Alert(line, 50, CENT, T0)
    async with serve_app(app) as base:
        with pytest.raises(WebhookFailed, match="HTTP 400"):
            await asyncio.to_thread(WebhookSink(base + "/hook", first_wait_s=0.01).deliver, alert)
    assert hook.attempts == 1
    with pytest.raises(WebhookFailed, match="unreachable"):
        await asyncio.to_thread(
            WebhookSink("http://127.0.0.1:9/hook", attempts=2, first_wait_s=0.01).deliver, alert
        )
