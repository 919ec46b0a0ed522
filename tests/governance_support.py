"""Budget stores for the governance tests: each one built from a picklable spec, so worker processes of
the concurrency tests open their own connection to the same store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from modelyard.governance.store import BudgetStore, MemoryBudgetStore
from modelyard.governance.store_postgres import PostgresBudgetStore
from modelyard.governance.store_redis import RedisBudgetStore
from tests.ledger_support import pg_url

REDIS_URL = "redis://127.0.0.1:6379/0"

__all__ = ["REDIS_URL", "StoreSpec", "pg_url", "redis_prefix", "store_spec"]


@dataclass(frozen=True)
class StoreSpec:
    kind: str
    where: str
    prefix: str = ""

    def open(self) -> BudgetStore:
        if self.kind == "memory":
            return MemoryBudgetStore()
        if self.kind == "sqlite":
            from modelyard.governance.store_sqlite import SQLiteBudgetStore

            return SQLiteBudgetStore(self.where)
        if self.kind == "mapped":
            from modelyard.governance.store_mapped import MappedBudgetStore

            return MappedBudgetStore(self.where)
        if self.kind == "postgres":
            return PostgresBudgetStore(self.where)
        return RedisBudgetStore(self.where, prefix=self.prefix)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own, deleted after the test."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"test:gov:{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = list(client.scan_iter(prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(
    params=["memory", "sqlite", "mapped", pytest.param("postgres", marks=pytest.mark.postgres), "redis"]
)
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    kind = str(request.param)
    if kind in ("sqlite", "mapped"):
        return StoreSpec(kind, str(tmp_path / "governance.db"))
    if kind == "postgres":
        return StoreSpec(kind, str(request.getfixturevalue("pg_url")))
    if kind == "redis":
        return StoreSpec(kind, REDIS_URL, str(request.getfixturevalue("redis_prefix")))
    return StoreSpec(kind, "")
