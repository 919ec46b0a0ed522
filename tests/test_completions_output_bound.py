"""Legacy ``/v1/completions`` bounds its output as chat does (issue 15): a request without ``max_tokens``
is sent the bound its reservation assumed (min of the request's and the workload's cap, else the default),
so its answer cannot cost more than was held; ``bound_output: false`` opts out.

The fakes' ``verbose`` model writes until the ``max_tokens`` the request sent stops it, or 100,000 tokens
when it sent none (the legacy endpoint has no other name for the bound, at OpenAI or on vLLM/Ollama)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.governance.estimate import input_tokens
from modelyard.governance.model import Subject
from tests.fakes import flaky
from tests.test_budget_output_bound import (
    BOUND,
    PROMPT,
    TOKENS_BUDGET,
    USD_BUDGET,
    assert_unbounded_and_settled,
    reservation_pico,
    sections,
)
from tests.test_gateway_budgets import budget_status
from tests.test_gateway_resilience import fleet, models

VERBOSE = flaky.FaultPlan(rate=1.0, faults=("verbose",))


async def complete(session: aiohttp.ClientSession, url: str, **extra: Any) -> tuple[int, bytes]:
    body = {"model": "m", "prompt": PROMPT, **extra}
    async with session.post(f"{url}/v1/completions", data=orjson.dumps(body)) as answer:
        return answer.status, await answer.read()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", ["up", "self"])
async def test_a_completion_without_max_tokens_is_stopped_at_its_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool, provider: str
) -> None:
    # The self-hosted model has no price: a token budget holds it (a USD one would refuse it, unpriced).
    budgets = [TOKENS_BUDGET] if provider == "self" else [USD_BUDGET, TOKENS_BUDGET]
    config = {"models": models(m=provider), **sections(tmp_path, budgets=budgets)}
    async with fleet(tmp_path, monkeypatch, {provider: VERBOSE}, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, raw = await complete(session, gateway.url, stream=stream)
        (row,) = await gateway.wait_rows(1)
        counters = budget_status(gateway, Subject(None, None, "chat"))
    assert status == 200, raw
    (received,) = states[provider].received
    assert received.path == "/v1/completions", "forwarded, not translated to chat"
    # The legacy endpoint's one name for the bound, at OpenAI and on every self-hosted server.
    assert received.body["max_tokens"] == BOUND and "max_completion_tokens" not in received.body
    assert row["output_tokens"] == BOUND, "the model wrote until the bound the gateway sent"
    tokens = row["input_tokens"] + row["output_tokens"]
    assert tokens <= input_tokens([PROMPT]) + BOUND, "no more tokens than were held"
    assert counters["tokens"].spent == tokens and counters["tokens"].reserved == 0
    if provider == "up":
        assert 0 < row["cost_pico_usd"] <= reservation_pico(BOUND)


async def test_a_completions_own_max_tokens_goes_upstream_untouched_and_a_cap_bounds_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = sections(tmp_path, workloads={"capped": {"max_output_tokens": 64}})
    config = {**section, "models": models(m="up"), "workloads": {"chat": {}, "capped": {}}}
    async with fleet(tmp_path, monkeypatch, {"up": VERBOSE}, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            await complete(session, gateway.url, max_tokens=40)
            await complete(session, gateway.url, metadata={"workload": "capped"})
            refused, raw = await complete(
                session, gateway.url, max_tokens=65, metadata={"workload": "capped"}
            )
        rows = await gateway.wait_rows(3)
    own, capped = (r.body for r in states["up"].received)
    assert own["max_tokens"] == 40 and capped["max_tokens"] == 64
    assert "metadata" not in capped, "gateway routing data stays here"
    served = sorted(r["output_tokens"] for r in rows if r["status"] == 200)
    assert served == [40, 64]
    assert refused == 400 and orjson.loads(raw)["error"]["code"] == "max_tokens_above_cap"


async def test_a_completions_workload_that_opts_out_is_sent_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control: unbounded, the verbose model writes far past what was held, as every completion did
    # before the bound was sent.
    config = {"models": models(m="up"), **sections(tmp_path, workloads={"chat": {"bound_output": False}})}
    async with fleet(tmp_path, monkeypatch, {"up": VERBOSE}, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, _ = await complete(session, gateway.url)
        (row,) = await gateway.wait_rows(1)
        counter = budget_status(gateway, Subject(None, None, "chat"))["usd"]
    assert_unbounded_and_settled(status, states["up"].received[0].body, row, counter)


async def test_a_list_of_prompts_holds_one_bound_per_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each prompt of a list gets its own answer, each up to the bound: the budget must hold them all.
    # A token budget with room for one prompt's answer and not for three refuses the list of three
    # (it was held as one answer, and the three could write 3x what was reserved).
    prompts = [PROMPT, PROMPT + "?", PROMPT + "!"]
    one = input_tokens([PROMPT]) + BOUND
    budget = {**TOKENS_BUDGET, "limit": str(input_tokens(prompts) + 2 * BOUND)}
    config = {"models": models(m="up"), **sections(tmp_path, budgets=[budget])}
    gateway_fleet = fleet(tmp_path, monkeypatch, {"up": VERBOSE}, **config)
    async with gateway_fleet as (gateway, states), aiohttp.ClientSession() as session:
        many, raw_many = await complete(session, gateway.url, prompt=prompts)
        single, raw_single = await complete(session, gateway.url)
    assert one < input_tokens(prompts) + 2 * BOUND, "the budget has room for one prompt's answer"
    assert many == 429 and orjson.loads(raw_many)["error"]["code"] == "budget_exceeded", raw_many
    assert single == 200, raw_single
    (received,) = states["up"].received
    assert received.body["max_tokens"] == BOUND, "the bound sent is one answer's, not the list's"


async def test_best_of_is_refused_as_n_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # best_of > 1 has the server write and bill that many answers per prompt and return one.
    config = {"models": models(m="up"), **sections(tmp_path)}
    gateway_fleet = fleet(tmp_path, monkeypatch, {"up": VERBOSE}, **config)
    async with gateway_fleet as (gateway, states), aiohttp.ClientSession() as session:
        status, raw = await complete(session, gateway.url, best_of=3)
    assert status == 400 and orjson.loads(raw)["error"]["param"].startswith("best_of"), raw
    assert states["up"].received == []
