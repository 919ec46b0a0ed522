"""A flood of made-up ``myd-...`` keys costs the key cache no database lookup each: unknown keys are
answered from the snapshot of active keys, reloaded at most once a second on a miss and every TTL; a key
created on another replica works within that second, one created or revoked through this process's
store (the admin API) at once."""

from __future__ import annotations

import multiprocessing
from typing import Any

from modelyard.governance.key_cache import MISS_REFRESH_S, KeyCache
from modelyard.governance.keys import KeyStore, new_key
from tests.ledger_support import pg_url, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStore(KeyStore):
    """The gateway's key store, counting the queries the cache sends it."""

    queries = 0

    def active_records(self) -> list[tuple[Any, ...]]:
        self.queries += 1
        return super().active_records()


def _create_elsewhere(url: str, key_id: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = KeyStore(url)
    out.put(store.create(key_id, "acme")[1])
    store.close()


def test_a_flood_of_random_keys_costs_one_query_per_refresh_not_one_per_key(store_url: str) -> None:
    admin = KeyStore(store_url)
    _, good = admin.create("team-a", "acme")
    store = CountingStore(store_url)
    clock = Clock()
    cache = KeyCache(store, ttl_s=5.0, clock=clock)
    assert cache.lookup(good) is not None
    store.queries = 0
    flood = 20_000
    for i in range(flood):  # 20,000 different keys over 20 s of the cache's clock
        clock.now += 0.001
        assert cache.lookup(new_key()) is None
        if i % 1000 == 0:
            assert cache.lookup(good) is not None  # the real key keeps working through the flood
    # One snapshot reload per MISS_REFRESH_S (about 20) plus the real key's re-checks every TTL (4):
    # without the snapshot this was 20,000 lookups.
    assert store.queries <= 20 / MISS_REFRESH_S + 20 / 5 + 2, store.queries
    admin.close()
    store.close()


def test_a_key_made_on_another_replica_works_within_a_second_and_admin_writes_here_apply_at_once(
    store_url: str,
) -> None:
    store = KeyStore(store_url)
    clock = Clock()
    cache = KeyCache(store, ttl_s=5.0, clock=clock)
    assert cache.lookup(new_key()) is None  # the snapshot is loaded: no keys yet

    queue: multiprocessing.Queue[str] = multiprocessing.get_context("fork").Queue()
    other = multiprocessing.get_context("fork").Process(
        target=_create_elsewhere, args=(store_url, "remote", queue)
    )
    other.start()
    remote = queue.get(timeout=30)
    other.join(30)
    assert cache.lookup(remote) is None  # the snapshot is younger than MISS_REFRESH_S
    clock.now += MISS_REFRESH_S
    assert cache.lookup(remote) is not None

    _, local = store.create("local", "acme")  # through this process's store, as the admin API does
    assert cache.lookup(local) is not None  # no wait
    store.revoke("local")
    assert cache.lookup(local) is None  # no wait either
    store.close()
