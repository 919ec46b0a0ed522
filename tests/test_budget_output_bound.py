"""A request that sets no output bound is sent the one its budget reservation assumed (issue 15), so its
answer cannot cost more than was held: the "overshoot <= one request's cost" guarantee holds for it too.

The fakes' ``verbose`` scenario is a model that writes until it is stopped: the output bound the request
sent, or 100,000 tokens when it sent none. Each test reads what the upstream received and what the ledger
metered, against the reservation computed independently here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.catalog.prices import load_catalog
from modelyard.config.governance import WorkloadCaps
from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import bound_to_send, estimate, input_tokens
from modelyard.governance.model import Line, Subject, Window
from modelyard.providers.openai import OPENAI_PROFILE, to_request
from modelyard.providers.openai_compatible import PROFILES
from tests.conftest import gateway_config
from tests.fakes import flaky
from tests.fakes.common import UNBOUNDED_OUTPUT_TOKENS, FakeState
from tests.governance_support import REDIS_URL, redis_prefix
from tests.test_gateway_budgets import SERVER, WORKLOADS, budget_status, governance
from tests.test_gateway_resilience import chat, fleet, models

__all__ = ["redis_prefix"]  # a fixture used by name

#: Below the gateway's own default (4096) and the Anthropic adapter's, so a test can tell them apart.
BOUND = 300
#: Long enough that its byte bound (25 + framing) is above the 11 input tokens the fakes report for any prompt.
PROMPT = "what is the answer, then?"
MESSAGES = [{"role": "user", "content": PROMPT}]
USD_BUDGET = {"name": "usd", "scope": "workload", "unit": "usd", "limit": "10", "window": {"kind": "day"}}
TOKENS_BUDGET = {**USD_BUDGET, "name": "tokens", "unit": "tokens", "limit": "1000000"}


def reservation_pico(max_output: int, prompt: str = PROMPT) -> int:
    """What one chat request with ``prompt`` to gpt-4o-mini reserves when its output bound is ``max_output``."""
    held = estimate(
        GovernanceConfig(),
        load_catalog(()).price_for("openai", "gpt-4o-mini"),
        model="m",
        workload="chat",
        prompt_tokens=input_tokens([prompt]),
        max_tokens=max_output,
        usd_budgets_apply=True,
    )
    assert held.cost_pico is not None
    return held.cost_pico


def sections(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    extra.setdefault("budgets", [USD_BUDGET])
    section = governance(tmp_path, default_max_output_tokens=BOUND, **extra)
    return {"workloads": WORKLOADS, "server": SERVER, "governance": section}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("provider", "field"), [("up", "max_completion_tokens"), ("self", "max_tokens")])
async def test_a_chat_request_without_max_tokens_is_stopped_at_its_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool, provider: str, field: str
) -> None:
    plans = {provider: flaky.FaultPlan(rate=1.0, faults=("verbose",))}
    # The self-hosted model has no price: a token budget holds it (a USD one would refuse it, unpriced).
    budgets = [TOKENS_BUDGET] if provider == "self" else [USD_BUDGET, TOKENS_BUDGET]
    config = {"models": models(m=provider), **sections(tmp_path, budgets=budgets)}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, raw = await chat(session, gateway.url, "m", stream=stream, messages=MESSAGES)
        (row,) = await gateway.wait_rows(1)
        counters = budget_status(gateway, Subject(None, None, "chat"))
    assert status == 200, raw
    sent = states[provider].received[0].body
    # OpenAI gets the field its reasoning models require; a self-hosted server the one they all honour.
    assert sent[field] == BOUND and len({"max_tokens", "max_completion_tokens"} & sent.keys()) == 1
    assert row["output_tokens"] == BOUND, "the model wrote until the bound the gateway sent"
    tokens = row["input_tokens"] + row["output_tokens"]
    assert tokens <= input_tokens([PROMPT]) + BOUND, "no more tokens than were held"
    assert counters["tokens"].spent == tokens and counters["tokens"].reserved == 0
    if provider == "up":
        assert 0 < row["cost_pico_usd"] <= reservation_pico(BOUND)
        assert counters["usd"].spent == row["cost_pico_usd"] and counters["usd"].reserved == 0


async def test_the_network_store_path_sends_the_bound_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_prefix: str
) -> None:
    # With Redis the reservation runs in the governance's thread pool (budgeting.reserve), not the batch.
    import uuid

    budget = {**USD_BUDGET, "name": f"usd-{uuid.uuid4().hex[:8]}"}
    section = {"store": {"kind": "redis", "url": REDIS_URL}, "default_max_output_tokens": BOUND}
    config = {
        "models": models(m="up"),
        "workloads": WORKLOADS,
        "server": SERVER,
        "governance": {**section, "budgets": [budget]},
    }
    plans = {"up": flaky.FaultPlan(rate=1.0, faults=("verbose",))}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, _ = await chat(session, gateway.url, "m", messages=MESSAGES)
        (row,) = await gateway.wait_rows(1)
    assert status == 200 and states["up"].received[0].body["max_completion_tokens"] == BOUND
    assert row["output_tokens"] == BOUND and row["cost_pico_usd"] <= reservation_pico(BOUND)


async def test_the_clients_own_max_tokens_goes_upstream_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"up": flaky.FaultPlan(rate=1.0, faults=("verbose",))}
    config = {"models": models(m="up"), **sections(tmp_path)}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            await chat(session, gateway.url, "m", max_tokens=40)
            await chat(session, gateway.url, "m", max_completion_tokens=1000)  # above the default: allowed
        rows = await gateway.wait_rows(2)
    first, second = (r.body for r in states["up"].received)
    assert first["max_tokens"] == 40 and "max_completion_tokens" not in first
    assert second["max_completion_tokens"] == 1000 and "max_tokens" not in second
    assert [r["output_tokens"] for r in rows] == [40, 1000]


async def test_a_workload_cap_is_sent_even_with_no_budget_and_a_requests_budget_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests_only = {**USD_BUDGET, "unit": "requests", "limit": "100"}
    section = governance(
        tmp_path,
        workloads={"capped": {"max_output_tokens": 64}},
        budgets=[{**requests_only, "subject": "chat"}],
    )
    workloads = {"chat": {}, "capped": {}}
    config = {"models": models(m="up"), "workloads": workloads, "server": SERVER, "governance": section}
    plans = {"up": flaky.FaultPlan(rate=1.0, faults=("verbose",))}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            await chat(session, gateway.url, "m", metadata={"workload": "capped"})
            await chat(session, gateway.url, "m")  # "chat": only a request count is held
        await gateway.wait_rows(2)
    capped, counted = (r.body for r in states["up"].received)
    assert capped["max_completion_tokens"] == 64, "the cap is a hard limit, budget or not"
    assert "max_completion_tokens" not in counted and "max_tokens" not in counted


def assert_unbounded_and_settled(status: int, sent: Any, row: dict[str, Any], counter: Any) -> None:
    """An opted-out request: no bound sent, the verbose model wrote past the reservation, and the
    counter still settled to exactly the metered cost."""
    assert status == 200 and "max_completion_tokens" not in sent and "max_tokens" not in sent
    assert row["output_tokens"] == UNBOUNDED_OUTPUT_TOKENS
    assert row["cost_pico_usd"] > reservation_pico(BOUND), "unbounded: the answer cost more than was held"
    assert counter.spent == row["cost_pico_usd"] and counter.reserved == 0, "settled exactly all the same"


async def test_a_workload_that_opts_out_is_sent_nothing_and_may_spend_past_its_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control: the same verbose model, unbounded, writes far past what was held. This is what every
    # request without max_tokens did before the bound was sent.
    config = {"models": models(m="up"), **sections(tmp_path, workloads={"chat": {"bound_output": False}})}
    plans = {"up": flaky.FaultPlan(rate=1.0, faults=("verbose",))}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, _ = await chat(session, gateway.url, "m", messages=MESSAGES)
        (row,) = await gateway.wait_rows(1)
        counter = budget_status(gateway, Subject(None, None, "chat"))["usd"]
    assert_unbounded_and_settled(status, states["up"].received[0].body, row, counter)


@pytest.mark.parametrize("stream", [False, True])
async def test_the_responses_api_forwarded_to_openai_gets_max_output_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    plans = {"up": flaky.FaultPlan(rate=1.0, faults=("verbose",))}
    config = {"models": models(m="up"), **sections(tmp_path)}
    body = {"model": "m", "input": PROMPT, "stream": stream}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            answer = await session.post(f"{gateway.url}/v1/responses", data=orjson.dumps(body))
            status = answer.status
            await answer.read()
        (row,) = await gateway.wait_rows(1)
    (received,) = states["up"].received
    assert status == 200 and received.path == "/v1/responses", "forwarded as it came, not translated"
    assert received.body["max_output_tokens"] == BOUND
    assert row["output_tokens"] == BOUND and row["cost_pico_usd"] <= reservation_pico(BOUND)


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
async def test_other_provider_kinds_get_the_bound_in_their_own_field(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]], kind: str
) -> None:
    from modelyard.app import running_gateway

    bases, states = fakes
    states["anthropic"].scenario = "verbose"
    config = gateway_config(
        tmp_path,
        bases,
        governance=governance(tmp_path, default_max_output_tokens=BOUND, budgets=[USD_BUDGET]),
    )
    async with running_gateway(config, "127.0.0.1", 0) as url, aiohttp.ClientSession() as session:
        status, raw = await chat(session, url, f"{kind}-chat")
    assert status == 200, raw
    sent = states[kind].received[0].body
    if kind == "anthropic":  # not its adapter's default of 4096: what the reservation assumed
        assert sent["max_tokens"] == BOUND
        assert orjson.loads(raw)["usage"]["completion_tokens"] == BOUND
    else:
        assert sent["generationConfig"]["maxOutputTokens"] == BOUND


def _line(unit: str) -> Line:
    return Line("c", "b", "workload", "chat", unit, 1, 10, True, Window(0, 1, "day"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("caps", "max_tokens", "units", "sent"),
    [
        (None, None, ["usd"], BOUND),  # the default, held on a USD budget
        (None, None, ["tokens"], BOUND),  # ... or a token budget / tokens-per-minute limit
        (None, None, ["requests"], None),  # a request count does not depend on the output
        (None, None, [], None),  # nothing held: nothing to keep within
        (None, 50, ["usd"], None),  # the request's own bound is kept
        (WorkloadCaps(max_output_tokens=64), None, [], 64),  # a cap is sent, budget or not
        (WorkloadCaps(max_output_tokens=64), 20, ["usd"], None),
        (WorkloadCaps(max_output_tokens=64, bound_output=False), None, ["usd"], None),  # opted out
        (WorkloadCaps(bound_output=False), None, ["usd"], None),
    ],
)
def test_which_requests_are_sent_the_reserved_bound(
    caps: WorkloadCaps | None, max_tokens: int | None, units: list[str], sent: int | None
) -> None:
    config = GovernanceConfig(default_max_output_tokens=BOUND, workloads={"w": caps} if caps else {})
    held = estimate(
        config, None, model="m", workload="w", prompt_tokens=5, max_tokens=max_tokens, usd_budgets_apply=False
    )
    assert bound_to_send(held, [_line(u) for u in units]) == sent
    flagged = caps is not None and not caps.bound_output and max_tokens is None
    assert (held.output_bound == "unbounded") is flagged


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_self_hosted_servers_get_max_tokens_and_openai_keeps_max_completion_tokens(profile: str) -> None:
    body = {"messages": [], "max_completion_tokens": 77}
    assert to_request(body, "m", PROFILES[profile], stream=False)["max_tokens"] == 77
    assert "max_completion_tokens" not in to_request(body, "m", PROFILES[profile], stream=False)
    assert to_request(body, "m", OPENAI_PROFILE, stream=False)["max_completion_tokens"] == 77
    both = {"messages": [], "max_tokens": 5, "max_completion_tokens": 77}
    assert to_request(both, "m", PROFILES[profile], stream=False)["max_tokens"] == 5, "the client's own kept"


def test_a_workload_without_the_bound_is_named_in_a_warning_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from modelyard.governance.runtime import open_governance

    config = GovernanceConfig.model_validate(
        governance(tmp_path, workloads={"research": {"bound_output": False}, "chat": {}})
    )
    governance_ = open_governance(config, f"sqlite:///{tmp_path / 'ledger.db'}")
    governance_.close()
    warned = [r.getMessage() for r in caplog.records if r.name == "modelyard.governance"]
    assert len(warned) == 1 and "'research'" in warned[0] and "more than its reservation" in warned[0]
