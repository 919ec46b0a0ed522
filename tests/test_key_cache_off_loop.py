"""The runtime key cache reads its store off the event loop (issue 15): a slow key-store read (PostgreSQL
across the network) stalls no request, and a revoked key still stops working within the cache's TTL."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.governance.key_cache import KeyCache, KeyStoreUnavailable
from modelyard.governance.keys import KeyStore
from tests.fakes import flaky
from tests.ledger_support import pg_url, store_url
from tests.test_gateway_resilience import fleet, models

__all__ = ["pg_url", "store_url"]  # fixtures used by name

#: How long each read of the slow key store takes: far above a request's own time here.
SLOW_READ_S = 1.0


class SlowReads:
    """Makes every SELECT of the key store sleep, noting when the first slow read starts and ends."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.ended = threading.Event()
        self.original = KeyStore._run

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def run(store: KeyStore, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            if sql.startswith("SELECT"):
                first = not self.started.is_set()
                self.started.set()
                time.sleep(SLOW_READ_S)
                if first:
                    self.ended.set()
            return self.original(store, sql, params)

        monkeypatch.setattr(KeyStore, "_run", run)


def keyed_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A gateway that requires keys, with runtime keys in ``tmp_path/ledger.db`` (a 5 s key cache)."""
    section = {"store": {"kind": "sqlite", "path": str(tmp_path / "gov.db")}, "key_cache_ttl_s": 5}
    config = {
        "models": models(m="up"),
        "workloads": {"chat": {}},
        "server": {"default_workload": "chat"},
        "auth": {"required": True},
        "governance": section,
    }
    return fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config)


async def post(session: aiohttp.ClientSession, url: str, key: str) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}"}
    async with session.post(f"{url}/v1/chat/completions", data=orjson.dumps(body), headers=headers) as r:
        await r.read()
        return r.status


async def test_a_slow_key_store_read_does_not_stall_other_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    _, key = keys.create("team-a", "acme")
    keys.close()
    gateway_fleet = keyed_fleet(tmp_path, monkeypatch)
    async with gateway_fleet as (gateway, _), aiohttp.ClientSession() as session:
        assert await post(session, gateway.url, key) == 200
        slow = SlowReads()
        slow.install(monkeypatch)
        # The periodic reload (every ttl/2 = 2.5 s) runs in the cache's thread while requests are served.
        for _ in range(400):
            if slow.started.is_set():
                break
            await asyncio.sleep(0.01)
        assert slow.started.is_set(), "the periodic reload began"
        assert await post(session, gateway.url, key) == 200
        assert not slow.ended.is_set(), "answered while the slow read was still running"
        monkeypatch.setattr(KeyStore, "_run", slow.original)
        while not slow.ended.is_set():
            await asyncio.sleep(0.05)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_refreshing_cache_drops_a_key_revoked_elsewhere_within_its_ttl(store_url: str) -> None:
    admin = KeyStore(store_url)
    _, key = admin.create("team-a", "acme")
    gateway = KeyStore(store_url)  # the gateway's own connection
    cache = KeyCache(gateway, ttl_s=0.4)
    cache.start_refreshing()
    try:
        assert cache.lookup(key) is not None
        admin.revoke("team-a")  # another connection: this cache hears nothing of it
        time.sleep(0.4)
        assert cache.lookup(key) is None
    finally:
        cache.close()
        gateway.close()
        admin.close()


def test_a_snapshot_past_its_ttl_is_refused_not_served_while_the_store_cannot_be_read(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = KeyStore(store_url)
    _, key = store.create("team-a", "acme")
    clock = Clock()
    cache = KeyCache(store, ttl_s=5.0, clock=clock)
    cache.start_refreshing()
    try:
        failures = threading.Event()

        def unreadable() -> list[tuple[Any, ...]]:
            failures.set()
            raise ConnectionError("the database is away")

        monkeypatch.setattr(store, "active_records", unreadable)
        clock.now += 4.9
        assert cache.lookup(key) is not None, "within the TTL the last snapshot stands"
        assert failures.wait(5), "the refresher tried to reload"
        clock.now += 0.2
        with pytest.raises(KeyStoreUnavailable, match="key_cache_ttl_s is 5"):
            cache.lookup(key)
        monkeypatch.undo()
        cache._wake.set()
        for _ in range(100):  # the refresher reloads once the store answers again
            time.sleep(0.02)
            try:
                assert cache.lookup(key) is not None
                break
            except KeyStoreUnavailable:
                continue
        else:
            raise AssertionError("the cache never recovered")
    finally:
        cache.close()
        store.close()


async def test_a_key_created_on_another_replica_works_on_its_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (session 8): with the snapshot reloaded only by the thread, a key another replica had
    # just created was refused with 401 on its first use; the replica benchmark's 200 requests got 79.
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    keys = KeyStore(ledger)
    _, first = keys.create("team-a", "acme")
    gateway_fleet = keyed_fleet(tmp_path, monkeypatch)
    async with gateway_fleet as (gateway, _), aiohttp.ClientSession() as session:
        assert await post(session, gateway.url, first) == 200
        await asyncio.sleep(1.1)  # MISS_REFRESH_S since the last reload
        _, fresh = keys.create("team-b", "acme")  # "another replica": not this process's admin API
        statuses = await asyncio.gather(*(post(session, gateway.url, fresh) for _ in range(20)))
    keys.close()
    assert statuses == [200] * 20
