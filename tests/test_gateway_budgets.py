"""Budgets, rate limits and workload caps enforced on real requests (issue 15): over loopback HTTP with the
flaky OpenAI fake, the embedded SQLite budget store, and the ledger. After every kind of ending the budget
counters must equal the ledger's sums, with nothing left reserved."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.catalog.prices import from_pico, load_catalog
from modelyard.gateway.auth import hash_key
from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import estimate, input_tokens
from modelyard.governance.governor import Governor
from modelyard.governance.model import BudgetStatus, Subject
from modelyard.governance.runtime import open_budget_store
from tests.conftest import GatewayUnderTest
from tests.fakes import flaky
from tests.governance_support import REDIS_URL, pg_url, redis_prefix

__all__ = ["pg_url", "redis_prefix"]  # fixtures used by name
from tests.test_gateway_resilience import chat, fleet, models

KEY = "myd-budget-test-key-0001"
AUTH = {"Authorization": f"Bearer {KEY}"}
AUTH_CONFIG = {"keys": {"team-a": {"sha256": hash_key(KEY), "tenant": "acme"}}}
WORKLOADS = {"chat": {}}
SERVER = {"default_workload": "chat"}


def governance(tmp_path: Path, **section: Any) -> dict[str, Any]:
    return {"store": {"kind": "sqlite", "path": str(tmp_path / "gov.db")}, **section}


def budget_status(gateway: GatewayUnderTest, subject: Subject) -> dict[str, BudgetStatus]:
    """What the budget store holds now, read through a Governor of our own (as another process would)."""
    assert gateway.config.governance is not None
    store = open_budget_store(gateway.config.governance.store)
    try:
        return {s.line.budget: s for s in Governor(gateway.config.governance, store).status(subject)}
    finally:
        store.close()


def the_estimate(config: GovernanceConfig, max_tokens: int) -> int:
    """The reservation of one {"content": "hi"} request to gpt-4o-mini, in pico-USD."""
    price = load_catalog(()).price_for("openai", "gpt-4o-mini")
    held = estimate(
        config,
        price,
        model="m",
        workload="chat",
        prompt_tokens=input_tokens(["hi"]),
        max_tokens=max_tokens,
        usd_budgets_apply=True,
    )
    assert held.cost_pico is not None
    return held.cost_pico


async def test_a_budget_admits_while_it_has_headroom_then_refuses_with_429_and_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"up": flaky.FaultPlan()}
    # One answered request costs `cost` and reserves `held`: the fourth's reservation fits the limit
    # exactly (3 spent + its hold), the fifth's would pass it.
    actual = load_catalog(()).price_for("openai", "gpt-4o-mini")
    assert actual is not None
    from modelyard.providers.base import Usage

    cost = actual.cost_pico(Usage(input_tokens=11, output_tokens=4))
    held = the_estimate(GovernanceConfig(), 20)
    assert held > cost, "the test needs an estimate above the real cost"
    limit = from_pico(3 * cost + held)
    section = governance(
        tmp_path,
        budgets=[
            {
                "name": "acme-daily",
                "scope": "tenant",
                "subject": "acme",
                "unit": "usd",
                "limit": str(limit),
                "window": {"kind": "day", "timezone": "Europe/Paris"},
            }
        ],
    )
    config = {
        "models": models(m="up"),
        "workloads": WORKLOADS,
        "server": SERVER,
        "auth": AUTH_CONFIG,
        "governance": section,
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, _):
        async with aiohttp.ClientSession() as session:
            answers = [
                await session.post(
                    f"{gateway.url}/v1/chat/completions",
                    data=orjson.dumps(
                        {"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
                    ),
                    headers=AUTH,
                )
                for _ in range(5)
            ]
            bodies = [orjson.loads(await a.read()) for a in answers]
            async with session.get(f"{gateway.url}/metrics") as scraped:
                metrics = (await scraped.read()).decode()
        rows = await gateway.wait_rows(5)
        status = budget_status(gateway, Subject("acme", "team-a", "chat"))["acme-daily"]
    assert [a.status for a in answers] == [200, 200, 200, 200, 429], "no false refusal while room was left"
    refusal = bodies[4]["error"]
    assert refusal["code"] == "budget_exceeded" and refusal["type"] == "insufficient_quota"
    assert refusal["budget"]["name"] == "acme-daily" and refusal["budget"]["window"] == "day (Europe/Paris)"
    assert refusal["budget"]["resets_at"].endswith(("+00:00",))
    assert 1 <= int(answers[4].headers["Retry-After"]) <= 25 * 3600
    refused = rows[4]
    assert refused["status"] == 429 and refused["error_kind"] == "budget_exceeded"
    assert refused["workload"] == "chat" and refused["model"] == "m" and refused["tenant"] == "acme"
    assert "refused (budget_exceeded)" in refused["route"]
    spent = sum(r["cost_pico_usd"] for r in rows)
    assert status.spent == spent == 4 * cost and status.reserved == 0
    assert spent <= limit * 10**12
    labels = 'budget="acme-daily",scope="tenant",subject="acme",unit="usd"'
    gauges = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if labels in line
    }
    assert gauges["modelyard_budget_limit"] == pytest.approx(float(limit))
    assert gauges["modelyard_budget_spent"] == pytest.approx(spent / 1e12)
    assert gauges["modelyard_budget_remaining"] == pytest.approx(float(limit) - spent / 1e12)


@pytest.mark.parametrize(
    ("ending", "stream"),
    [
        ("text", False),
        ("text", True),
        ("server_error", False),  # every attempt fails: nothing billed
        ("server_error", True),
        ("stream_cut", True),  # cut after the first token: what was streamed is billed (estimated)
        ("cancel", False),  # the client goes away mid-request
        ("cancel", True),
    ],
)
async def test_every_ending_settles_the_counters_to_the_ledgers_sums(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str, stream: bool
) -> None:
    faults = ("slow",) if ending == "cancel" else (ending,)
    plans = {"up": flaky.FaultPlan(rate=1.0, faults=faults)}
    section = governance(
        tmp_path,
        budgets=[
            {
                "name": "usd",
                "scope": "workload",
                "subject": "chat",
                "unit": "usd",
                "limit": "5",
                "window": {"kind": "day"},
            },
            {
                "name": "tokens",
                "scope": "workload",
                "subject": "chat",
                "unit": "tokens",
                "limit": 100000,
                "window": {"kind": "month", "timezone": "America/New_York"},
            },
        ],
        rate_limits=[{"scope": "workload", "requests_per_minute": 1000}],
    )
    config = {"models": models(m="up"), "workloads": WORKLOADS, "server": SERVER, "governance": section}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                if ending == "cancel":
                    states["up"].delay_s = 0.4
                    with pytest.raises(asyncio.TimeoutError):
                        await asyncio.wait_for(chat(session, gateway.url, "m", stream=stream), 0.1)
                else:
                    await chat(session, gateway.url, "m", stream=stream, max_tokens=50)
        rows = await gateway.wait_rows(2)
        counters = budget_status(gateway, Subject(None, None, "chat"))
        if ending == "cancel":
            await asyncio.sleep(0.5)  # the upstream's "generation" ends before the fakes close
    assert len(rows) == 2
    if ending == "cancel":
        assert all(r["client_cancelled"] == 1 for r in rows)
    if ending == "stream_cut":
        assert all(r["error_kind"] == "upstream_stream_cut" and r["cost_pico_usd"] > 0 for r in rows)
    assert counters["usd"].spent == sum(r["cost_pico_usd"] or 0 for r in rows)
    assert counters["tokens"].spent == sum(r["input_tokens"] + r["output_tokens"] for r in rows)
    assert all(c.reserved == 0 for c in counters.values()), "a reservation was left behind"
    assert counters["rate:0:rpm"].spent + counters["rate:0:rpm"].reserved <= 2


def _not_near_a_minute_boundary() -> None:
    """Rate limits count in fixed wall-clock minutes: start a burst well inside one."""
    left = 60 - time.time() % 60
    if left < 3:
        time.sleep(left + 0.1)


@pytest.mark.parametrize("kept_in", ["store", "limits"])
async def test_a_rate_limit_answers_429_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept_in: str
) -> None:
    limits = [{"scope": "key", "requests_per_minute": 2}]
    section = governance(tmp_path, rate_limits=limits, rate_limits_in=kept_in)
    config = {
        "models": models(m="up"),
        "workloads": WORKLOADS,
        "server": SERVER,
        "auth": AUTH_CONFIG,
        "governance": section,
    }
    async with fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config) as (gateway, _):
        async with aiohttp.ClientSession() as session:
            _not_near_a_minute_boundary()
            statuses = []
            for _ in range(3):
                async with session.post(
                    f"{gateway.url}/v1/chat/completions",
                    data=orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                    headers=AUTH,
                ) as answer:
                    statuses.append(answer.status)
                    body = orjson.loads(await answer.read())
                    retry_after = answer.headers.get("Retry-After")
        rows = await gateway.wait_rows(3)
    assert statuses == [200, 200, 429]
    assert body["error"]["code"] == "rate_limit_exceeded" and "2 requests/min" in body["error"]["message"]
    assert retry_after is not None and 1 <= int(retry_after) <= 60
    assert rows[2]["error_kind"] == "rate_limit_exceeded" and rows[2]["api_key_id"] == "team-a"


@pytest.mark.parametrize(
    ("extra", "code", "param"),
    [
        ({"max_tokens": 300}, "max_tokens_above_cap", "max_tokens"),
        ({"max_completion_tokens": 300}, "max_tokens_above_cap", "max_tokens"),
        ({"messages": [{"role": "user", "content": "x" * 400}]}, "prompt_too_large", "messages"),
    ],
)
async def test_a_workload_cap_refuses_with_400_naming_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], code: str, param: str
) -> None:
    section = governance(tmp_path, workloads={"chat": {"max_output_tokens": 200, "max_input_tokens": 300}})
    config = {"models": models(m="up"), "workloads": WORKLOADS, "server": SERVER, "governance": section}
    async with fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, raw = await chat(session, gateway.url, "m", **extra)
            ok, _ = await chat(session, gateway.url, "m", max_tokens=200)
        rows = await gateway.wait_rows(2)
    error = orjson.loads(raw)["error"]
    assert (status, error["code"], error["param"]) == (400, code, param)
    assert "workload 'chat'" in error["message"]
    assert ok == 200 and len(states["up"].received) == 1, "the refused request never went upstream"
    assert rows[0]["error_kind"] == code and rows[0]["workload"] == "chat"


async def test_an_unpriced_model_under_a_usd_budget_follows_the_stated_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budgets = [{"name": "usd", "scope": "workload", "unit": "usd", "limit": "1", "window": {"kind": "day"}}]
    unpriced = {"m": {"provider": "up", "upstream_model": "no-such-priced-model"}}
    for rule, expected in (("refuse", 403), ("fixed", 200)):
        section = governance(tmp_path / rule, budgets=budgets, unpriced=rule, unpriced_usd="0.25")
        config = {"models": unpriced, "workloads": WORKLOADS, "server": SERVER, "governance": section}
        (tmp_path / rule).mkdir()
        async with fleet(tmp_path / rule, monkeypatch, {"up": flaky.FaultPlan()}, **config) as (gateway, _):
            async with aiohttp.ClientSession() as session:
                status, raw = await chat(session, gateway.url, "m")
            (row,) = await gateway.wait_rows(1)
            counters = budget_status(gateway, Subject(None, None, "chat"))
        assert status == expected, raw
        if rule == "refuse":
            assert orjson.loads(raw)["error"]["code"] == "budget_unpriced_model"
            assert row["error_kind"] == "budget_unpriced_model"
            assert "usd" not in counters or counters["usd"].spent == 0
        else:
            # The true cost is unknown: the ledger says unpriced, the budget is charged the stated amount.
            assert row["priced"] == 0 and row["cost_pico_usd"] is None
            assert counters["usd"].spent == 250_000_000_000 and counters["usd"].reserved == 0


def test_a_usd_limit_in_counter_units_is_the_ledgers_pico_usd() -> None:
    from modelyard.catalog.prices import to_pico
    from modelyard.config.governance import BudgetConfig

    for limit in ("0", "0.000000000001", "25", "1999.999999999999", "0.0000000000015"):
        budget = BudgetConfig.model_validate(
            {"name": "b", "scope": "tenant", "unit": "usd", "limit": limit, "window": {"kind": "day"}}
        )
        assert budget.limit_units == to_pico(Decimal(limit))


def test_budget_gauges_are_labelled_with_configured_names_only() -> None:
    from modelyard.config import parse_config
    from modelyard.gateway.budget_metrics import exported_subjects

    def budget(name: str, scope: str, subject: str = "*") -> dict[str, Any]:
        return {
            "name": name,
            "scope": scope,
            "subject": subject,
            "unit": "tokens",
            "limit": 10,
            "window": {"kind": "day"},
        }

    config = parse_config(
        {
            "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "models": {"m": {"provider": "p"}},
            "workloads": {"chat": {}, "batch": {}},
            "auth": {
                "keys": {
                    "k1": {"sha256": "a" * 64, "tenant": "acme"},
                    "k2": {"sha256": "b" * 64, "tenant": "acme"},
                }
            },
            "governance": {
                "budgets": [
                    budget("each-workload", "workload"),
                    budget("each-tenant", "tenant"),
                    budget("each-key", "key"),
                    budget("one", "tenant", "globex"),
                ]
            },
        }
    )
    assert exported_subjects(config) == {
        Subject(workload="batch"): {"each-workload"},
        Subject(workload="chat"): {"each-workload"},
        Subject(tenant="acme"): {"each-tenant"},
        Subject(tenant="globex"): {"one"},
        Subject(key_id="k1"): {"each-key"},
        Subject(key_id="k2"): {"each-key"},
    }


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres), "redis"])
async def test_the_shared_stores_settle_every_ending_through_the_gateway_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, kind: str
) -> None:
    if kind == "postgres":
        store = {"kind": "postgres", "url": request.getfixturevalue("pg_url")}
    else:
        request.getfixturevalue("redis_prefix")  # skips when Redis is away
        store = {"kind": "redis", "url": REDIS_URL}
    name = f"usd-{uuid.uuid4().hex[:8]}"  # counters of its own in a store other runs share
    section = {
        "store": store,
        "budgets": [
            {"name": name, "scope": "workload", "unit": "usd", "limit": "5", "window": {"kind": "day"}}
        ],
    }
    config = {"models": models(m="up"), "workloads": WORKLOADS, "server": SERVER, "governance": section}
    plans = {"up": flaky.FaultPlan(script=["text", "text", "stream_cut"])}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, _):
        async with aiohttp.ClientSession() as session:
            for stream in (False, True, True):
                await chat(session, gateway.url, "m", stream=stream, max_tokens=50)
        rows = await gateway.wait_rows(3)
        counter = budget_status(gateway, Subject(None, None, "chat"))[name]
    assert [r["error_kind"] for r in rows] == [None, None, "upstream_stream_cut"]
    assert counter.spent == sum(r["cost_pico_usd"] for r in rows) > 0 and counter.reserved == 0
