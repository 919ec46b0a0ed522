"""Runtime keys in the ledger database: shown once, stored hashed, revoked or rotated from another process
and refused by every cache within its stated TTL (an injected clock), on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelyard.cli.keys import keys_group
from modelyard.gateway import auth
from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.governor import Governor
from modelyard.governance.key_cache import KeyCache
from modelyard.governance.keys import KeyLimits, KeyStore, UnknownKey, hash_key, new_key
from modelyard.governance.model import BudgetExceeded, Subject
from modelyard.governance.store import MemoryBudgetStore
from tests.ledger_support import pg_url, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_keys_hash_and_look_like_the_config_keys_of_the_gateway() -> None:
    key = new_key()
    assert key.startswith(auth.KEY_PREFIX)
    assert hash_key(key) == auth.hash_key(key)


def _revoke_elsewhere(url: str, key_id: str) -> None:
    store = KeyStore(url)
    store.revoke(key_id)
    store.close()


def test_a_key_is_stored_only_as_its_hash_and_revocation_reaches_other_processes_within_the_ttl(
    store_url: str,
) -> None:
    admin = KeyStore(store_url)
    record, key = admin.create(
        "team-a", "acme", workloads=("chat",), limits=KeyLimits(usd_per_day=Decimal("5"))
    )
    assert (record.tenant, record.workloads, record.active) == ("acme", ("chat",), True)
    if store_url.startswith("sqlite:///"):
        assert key.encode() not in Path(store_url.removeprefix("sqlite:///")).read_bytes()

    gateway = KeyStore(store_url)  # the gateway's own connection
    clock = Clock()
    cache = KeyCache(gateway, ttl_s=5.0, clock=clock)
    assert cache.lookup(key) == admin.get("team-a")
    assert cache.lookup("myd-not-a-key") is None

    worker = multiprocessing.get_context("fork").Process(target=_revoke_elsewhere, args=(store_url, "team-a"))
    worker.start()
    worker.join(30)
    assert worker.exitcode == 0
    clock.now += 4.9  # within the stated bound the cached answer may still stand
    assert cache.lookup(key) is not None
    clock.now += 0.2  # past 5 s: refused
    assert cache.lookup(key) is None
    assert [k.key_id for k in admin.list_keys()] == []
    assert [k.key_id for k in admin.list_keys(include_revoked=True)] == ["team-a"]
    with pytest.raises(UnknownKey, match="keys list"):
        admin.revoke("team-a")
    admin.close()
    gateway.close()


def test_rotation_keeps_the_key_id_and_limits_and_stops_the_old_secret(store_url: str) -> None:
    store = KeyStore(store_url)
    _, old = store.create("svc", "acme", limits=KeyLimits(tokens_per_month=1000))
    rotated, new = store.rotate("svc")
    assert new != old and rotated.limits.tokens_per_month == 1000
    assert rotated.rotated_from == hash_key(old)[:12]
    cache = KeyCache(store, ttl_s=5.0, clock=Clock())
    assert cache.lookup(old) is None and cache.lookup(new) == rotated
    with pytest.raises(ValueError, match="exists already"):
        store.create("svc", "other")
    store.close()


def test_a_keys_limits_become_budgets_that_refuse_on_its_own_counters(store_url: str) -> None:
    store = KeyStore(store_url)
    record, _ = store.create("k1", "acme")
    record = store.set_limits("k1", KeyLimits(usd_per_day=Decimal("0.10"), requests_per_minute=60))
    assert store.get("k1") == record
    gov = Governor(GovernanceConfig(), MemoryBudgetStore())
    who = Subject("acme", "k1")
    gov.reserve(who, Estimate(6 * 10**10, 1, 1), record.limits.budgets("k1"))
    with pytest.raises(BudgetExceeded, match="'key-usd-per-day' \\(key k1, day \\(UTC\\)\\)"):
        gov.reserve(who, Estimate(6 * 10**10, 1, 1), record.limits.budgets("k1"))
    limit = record.limits.rate_limit("k1")
    assert limit is not None and limit.requests_per_minute == 60
    store.close()


def test_the_cli_creates_lists_rotates_limits_and_revokes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    runner = CliRunner()
    made = runner.invoke(keys_group, ["create", "--db", db, "--id", "team-b", "--tenant", "beta"])
    assert made.exit_code == 0, made.output
    key = made.stderr.split("shown once")[1].split(":", 1)[1].split()[0]
    assert key.startswith("myd-") and key not in made.stdout
    limited = runner.invoke(
        keys_group,
        ["limits", "--db", db, "--id", "team-b", "--usd-per-month", "50", "--requests-per-minute", "100"],
    )
    assert limited.exit_code == 0, limited.output
    listed = runner.invoke(keys_group, ["list", "--db", db])
    assert "team-b" in listed.stdout and "beta" in listed.stdout and "usd_per_month=50" in listed.stdout
    assert key not in listed.stdout
    rotated = runner.invoke(keys_group, ["rotate", "--db", db, "--id", "team-b"])
    assert rotated.exit_code == 0 and "shown once" in rotated.stderr
    revoked = runner.invoke(keys_group, ["revoke", "--db", db, "--id", "team-b"])
    assert revoked.exit_code == 0
    again = runner.invoke(keys_group, ["revoke", "--db", db, "--id", "team-b"])
    assert again.exit_code != 0 and "keys list" in again.output
