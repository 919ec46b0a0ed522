"""The budget gauges read a network budget store (Redis here, PostgreSQL alike) off the event loop, for a
``/metrics`` scrape and for the OTLP push (issue 15): a slow store read stalls no request, and the scrape
still shows what the store holds."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.gateway.auth import hash_key
from modelyard.governance.store_redis import RedisBudgetStore
from tests.fakes import flaky
from tests.fakes.common import free_port
from tests.fakes.otlp_receiver import receiving
from tests.governance_support import REDIS_URL, redis_prefix
from tests.test_gateway_resilience import fleet, models

__all__ = ["redis_prefix"]  # a fixture used by name

#: How long each read of the slow budget store takes: far above a request's own time here.
SLOW_READ_S = 1.0


class SlowReads:
    """Makes the budget store's counter reads sleep, noting when the first starts and ends."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.ended = threading.Event()
        #: Cleared to let the reads run at the store's own speed again.
        self.slow = True

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = RedisBudgetStore.state

        def state(store: RedisBudgetStore, counter: str) -> Any:
            if not self.slow:
                return original(store, counter)
            first = not self.started.is_set()
            self.started.set()
            time.sleep(SLOW_READ_S)
            if first:
                self.ended.set()
            return original(store, counter)

        monkeypatch.setattr(RedisBudgetStore, "state", state)

    async def wait_started(self) -> None:
        for _ in range(500):
            if self.started.is_set():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the budget store was never read")


def config_with(budget: str, **extra: Any) -> dict[str, Any]:
    usd = {"name": budget, "scope": "workload", "unit": "usd", "limit": "10", "window": {"kind": "day"}}
    return {
        "models": models(m="up"),
        "workloads": {"chat": {}},
        "server": {"default_workload": "chat"},
        "governance": {"store": {"kind": "redis", "url": REDIS_URL}, "budgets": [usd]},
        **extra,
    }


async def spend(session: aiohttp.ClientSession, url: str) -> None:
    body = {"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    async with session.post(f"{url}/v1/chat/completions", data=orjson.dumps(body)) as answer:
        assert answer.status == 200, await answer.read()


async def test_a_scrape_reading_a_slow_budget_store_does_not_stall_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_prefix: str
) -> None:
    budget = f"usd-{uuid.uuid4().hex[:8]}"
    gateway_fleet = fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config_with(budget))
    async with gateway_fleet as (gateway, _), aiohttp.ClientSession() as session:
        await spend(session, gateway.url)
        (row,) = await gateway.wait_rows(1)
        slow = SlowReads()
        slow.install(monkeypatch)
        scrape = asyncio.ensure_future(session.get(f"{gateway.url}/metrics"))
        await slow.wait_started()
        async with session.get(f"{gateway.url}/healthz") as health:
            assert health.status == 200
        assert not slow.ended.is_set(), "answered while the scrape's store read was still running"
        async with await scrape as scraped:
            text = (await scraped.read()).decode()
    labels = f'budget="{budget}",scope="workload",subject="chat",unit="usd"'
    spent = next(line for line in text.splitlines() if line.startswith(f"modelyard_budget_spent{{{labels}"))
    assert float(spent.rsplit(" ", 1)[1]) == pytest.approx(row["cost_pico_usd"] / 1e12), (
        "what the store holds"
    )


async def test_the_otlp_push_reading_a_slow_budget_store_does_not_stall_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_prefix: str
) -> None:
    budget = f"usd-{uuid.uuid4().hex[:8]}"
    port = free_port()
    otlp = {"enabled": True, "endpoint": f"http://127.0.0.1:{port}/v1/metrics", "interval_s": 1}
    config = config_with(budget, metrics={"otlp": otlp})
    async with receiving(port) as receiver:
        gateway_fleet = fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config)
        async with gateway_fleet as (gateway, _), aiohttp.ClientSession() as session:
            slow = SlowReads()
            slow.install(monkeypatch)
            await slow.wait_started()  # the push's read, within a second
            async with session.get(f"{gateway.url}/healthz") as health:
                assert health.status == 200
            assert not slow.ended.is_set(), "answered while the push's store read was still running"
            slow.slow = False
            while not slow.ended.is_set():
                await asyncio.sleep(0.05)
    pushed = {name for export in receiver.exports for name in export.metrics}
    assert "modelyard.budget.limit" in pushed, "the budget gauges are pushed all the same"


async def test_a_tenants_usage_reading_a_slow_budget_store_does_not_stall_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_prefix: str
) -> None:
    # GET /v1/usage shows the tenant's budgets: read from a network store in the governance's threads.
    budget = f"usd-{uuid.uuid4().hex[:8]}"
    key = "myd-usage-" + uuid.uuid4().hex
    auth = {"keys": {"a": {"sha256": hash_key(key), "tenant": "acme"}}}
    config = config_with(budget, auth=auth)
    config["governance"]["budgets"][0]["scope"] = "tenant"  # /v1/usage shows the tenant's own budgets
    gateway_fleet = fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config)
    async with gateway_fleet as (gateway, _), aiohttp.ClientSession() as session:
        slow = SlowReads()
        slow.install(monkeypatch)
        headers = {"Authorization": f"Bearer {key}"}
        usage = asyncio.ensure_future(session.get(f"{gateway.url}/v1/usage", headers=headers))
        await slow.wait_started()
        async with session.get(f"{gateway.url}/healthz") as health:
            assert health.status == 200
        assert not slow.ended.is_set(), "answered while the usage's store read was still running"
        async with await usage as answer:
            body = orjson.loads(await answer.read())
    assert answer.status == 200 and budget in {b["budget"] for b in body["budgets"]}, body
