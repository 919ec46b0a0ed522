"""Runtime keys (``modelyard keys create``) authenticate at the gateway through the key cache, carry
their own limits, and stop working within ``governance.key_cache_ttl_s`` of a revocation; ``/v1/usage``
shows the caller's budgets; the ``governance:`` section is validated with errors naming the field."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.config import parse_config
from modelyard.errors import ConfigError
from modelyard.governance.keys import KeyLimits, KeyStore
from tests.fakes import flaky
from tests.test_gateway_resilience import fleet, models

WORKLOADS = {"chat": {}, "batch": {}}
SERVER = {"default_workload": "chat"}
BUDGETS = [
    {
        "name": "acme-monthly",
        "scope": "tenant",
        "subject": "acme",
        "unit": "usd",
        "limit": "100",
        "window": {"kind": "month", "timezone": "Europe/Paris"},
    },
    {"name": "each-tenant", "scope": "tenant", "unit": "tokens", "limit": 1000000, "window": {"kind": "day"}},
]


async def post(session: aiohttp.ClientSession, url: str, key: str, workload: str = "chat") -> tuple[int, Any]:
    body = {"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}", "X-Modelyard-Workload": workload}
    async with session.post(f"{url}/v1/chat/completions", data=orjson.dumps(body), headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def test_a_runtime_key_works_and_a_revoked_one_is_refused_within_the_cache_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    _, key = keys.create("team-a", "acme", workloads=("chat",))
    section = {
        "store": {"kind": "sqlite", "path": str(tmp_path / "gov.db")},
        "key_cache_ttl_s": 0.2,
        "budgets": BUDGETS,
    }
    config = {
        "models": models(m="up"),
        "workloads": WORKLOADS,
        "server": SERVER,
        "auth": {"required": True},
        "governance": section,
    }
    try:
        async with fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config) as (gateway, _):
            async with aiohttp.ClientSession() as session:
                first, _ = await post(session, gateway.url, key)
                other_workload, denied = await post(session, gateway.url, key, "batch")
                unknown, _ = await post(session, gateway.url, "myd-not-a-key")
                async with session.get(
                    f"{gateway.url}/v1/usage", headers={"Authorization": f"Bearer {key}"}
                ) as r:
                    usage = orjson.loads(await r.read())
                keys.revoke("team-a")
                await asyncio.sleep(0.3)  # past key_cache_ttl_s: every cached answer has expired
                revoked, refusal = await post(session, gateway.url, key)
            rows = await gateway.wait_rows(4)
    finally:
        keys.close()
    assert first == 200 and rows[0]["tenant"] == "acme" and rows[0]["api_key_id"] == "team-a"
    assert other_workload == 403 and denied["error"]["code"] == "workload_not_allowed"
    assert unknown == 401
    assert revoked == 401 and refusal["error"]["code"] == "invalid_api_key"
    budgets = {b["budget"]: b for b in usage["budgets"]}
    assert set(budgets) == {"acme-monthly", "each-tenant"}
    monthly = budgets["acme-monthly"]
    assert (
        monthly["limit"] == "100"
        and monthly["reserved"] == "0"
        and monthly["window"] == "month (Europe/Paris)"
    )
    assert Decimal(monthly["spent"]) == Decimal(rows[0]["cost_pico_usd"]) / 10**12 > 0
    assert budgets["each-tenant"]["spent"] == rows[0]["input_tokens"] + rows[0]["output_tokens"]


async def test_a_runtime_keys_own_limits_are_enforced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    # Less than one request's reservation: the first request is refused on the key's own budget.
    _, key = keys.create("tiny", "acme", limits=KeyLimits(usd_per_day=Decimal("0.000001")))
    section = {"store": {"kind": "sqlite", "path": str(tmp_path / "gov.db")}}
    config = {"models": models(m="up"), "workloads": WORKLOADS, "server": SERVER, "governance": section}
    try:
        async with fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config) as (gateway, states):
            async with aiohttp.ClientSession() as session:
                status, body = await post(session, gateway.url, key)
            (row,) = await gateway.wait_rows(1)
    finally:
        keys.close()
    assert status == 429 and body["error"]["budget"]["name"] == "key-usd-per-day"
    assert body["error"]["budget"]["scope"] == "key" and body["error"]["budget"]["subject"] == "tiny"
    assert row["error_kind"] == "budget_exceeded" and states["up"].received == []


@pytest.mark.parametrize(
    ("section", "names"),
    [
        (
            {"workloads": {"chta": {"max_output_tokens": 10}}},
            "governance.workloads.chta: unknown workload 'chta'",
        ),
        (
            {
                "budgets": [
                    {
                        "name": "b",
                        "scope": "workload",
                        "subject": "nope",
                        "unit": "usd",
                        "limit": "1",
                        "window": {"kind": "day"},
                    }
                ]
            },
            "governance.budgets.b.subject: unknown workload 'nope'",
        ),
        ({"store": {"kind": "redis"}}, "needs 'url'"),
        (
            {
                "budgets": [
                    {
                        "name": "b",
                        "scope": "tenant",
                        "unit": "usd",
                        "limit": "1",
                        "window": {"kind": "day", "timezone": "Mars/Olympus"},
                    }
                ]
            },
            "unknown timezone",
        ),
        ({"unpriced": "ignore"}, "governance.unpriced"),
    ],
)
def test_the_governance_section_is_validated_with_errors_naming_the_field(
    section: dict[str, Any], names: str
) -> None:
    raw = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "p"}},
        "workloads": {"chat": {}},
        "governance": section,
    }
    with pytest.raises(ConfigError, match="governance") as caught:
        parse_config(raw)
    assert names in str(caught.value)


def test_required_auth_without_config_keys_needs_the_governance_section() -> None:
    raw: dict[str, Any] = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "p"}},
        "auth": {"required": True},
    }
    with pytest.raises(ConfigError, match="modelyard keys create"):
        parse_config(raw)
    assert parse_config({**raw, "governance": {}}).auth.required


async def test_a_budget_store_that_cannot_be_opened_fails_start_up_naming_the_field(tmp_path: Path) -> None:
    from modelyard.app import running_gateway

    raw = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "p"}},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "writer": "thread"},
        "governance": {"store": {"kind": "postgres", "url": "postgresql://nobody@127.0.0.1:1/none"}},
    }
    with pytest.raises(
        ConfigError, match=r"governance.store: cannot open the postgres budget store at 127.0.0.1:1"
    ):
        async with running_gateway(parse_config(raw), "127.0.0.1", 0):
            pass
