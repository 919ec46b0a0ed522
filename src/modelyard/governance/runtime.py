"""The governance engine of one process, opened from the config at start-up (never at import): the budget
store the config names, one :class:`Governor`, the runtime :class:`KeyCache`, the alert sinks and (with
``rate_limits_in: limits``) the :class:`RateLimiter`. The assembly (``modelyard.app``) opens it and hands
it to the gateway; closing it settles what is queued, then closes what it opened."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.governance.alerts import AlertSink, LogSink, WebhookSink
from modelyard.governance.config import GovernanceConfig, StoreConfig
from modelyard.governance.governor import Governor
from modelyard.governance.key_cache import KeyCache
from modelyard.governance.keys import KeyStore
from modelyard.governance.ratelimit import RateLimiter
from modelyard.governance.settler import Settler
from modelyard.governance.store import BudgetStore, MemoryBudgetStore

log = logging.getLogger("modelyard.governance")


def open_budget_store(config: StoreConfig) -> BudgetStore:
    """The store ``governance.store`` names (its tables made by the ledger's migrator if needed)."""
    if config.kind == "memory":
        return MemoryBudgetStore()
    if config.kind in ("sqlite", "mapped"):
        from modelyard.governance.store_mapped import MappedBudgetStore
        from modelyard.governance.store_sqlite import SQLiteBudgetStore

        if config.path != ":memory:":
            Path(config.path).parent.mkdir(parents=True, exist_ok=True)
        embedded = MappedBudgetStore if config.kind == "mapped" else SQLiteBudgetStore
        return embedded(config.path)
    assert config.url is not None  # StoreConfig refuses postgres and redis without one
    if config.kind == "postgres":
        from modelyard.governance.store_postgres import PostgresBudgetStore

        return PostgresBudgetStore(config.url)
    from modelyard.governance.store_redis import RedisBudgetStore

    return RedisBudgetStore(config.url)


@dataclass
class Governance:
    """What a gateway process enforces budgets and looks keys up with."""

    config: GovernanceConfig
    governor: Governor
    keys: KeyCache
    rate_limiter: RateLimiter | None = None
    key_store: KeyStore | None = None
    _webhook: WebhookSink | None = None
    _closed: bool = field(default=False, repr=False)
    #: Settles finished requests in batches (network stores: off the event loop).
    settler: Settler = field(init=False)
    #: True when a store call is a network round trip (PostgreSQL, Redis): run off the event loop.
    network: bool = False

    def __post_init__(self) -> None:
        self.settler = Settler(self.governor, self.rate_limiter, network=self.network)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.settler.close()
        if self._webhook is not None:
            self._webhook.close()
        self.governor.store.close()
        if self.key_store is not None:
            self.keys.close()  # its refreshing thread reads through key_store
            self.key_store.close()


def open_governance(
    config: GovernanceConfig,
    ledger_url: str,
    *,
    key_clock: Callable[[], float] = time.monotonic,
) -> Governance:
    """Open the store, the key store (the ledger's database) and the sinks ``config`` asks for."""
    for name, caps in config.workloads.items():
        if not caps.bound_output:
            log.warning(
                "workload %r: bound_output is false, so a request without max_tokens is sent no output bound;"
                " its answer can cost more than its reservation, and a budget can be passed by more than one"
                " request's cost",
                name,
            )
    store = open_budget_store(config.store)
    sinks: list[AlertSink] = [LogSink()]
    webhook = None
    if config.alerts.webhook_url is not None:
        webhook = WebhookSink(config.alerts.webhook_url, attempts=config.alerts.webhook_attempts)
        sinks.append(webhook)
    governor = Governor(config, store, sinks=sinks)
    key_store = KeyStore(ledger_url)
    keys = KeyCache(key_store, ttl_s=config.key_cache_ttl_s, clock=key_clock)
    keys.start_refreshing()  # reads in a thread: a lookup on the event loop never waits for the database
    limiter = None
    if config.rate_limits_in == "limits":
        uri = config.store.url if config.store.kind == "redis" and config.store.url else "memory://"
        limiter = RateLimiter.from_config(config, uri)
    network = config.store.kind in ("postgres", "redis")
    return Governance(config, governor, keys, limiter, key_store, webhook, network=network)
