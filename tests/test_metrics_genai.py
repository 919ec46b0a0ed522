"""``/metrics`` after real requests over loopback (answered, streamed, failed upstream, unpriced, fallen back),
read with prometheus_client's own parser: the OpenTelemetry GenAI names, attributes and values, and
modelyard's series beside them, held against the ledger rows of the same requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelyard.app import running_gateway
from tests.conftest import GatewayUnderTest, gateway_config
from tests.fakes.common import FakeState

MESSAGES = [{"role": "user", "content": "hi"}]
Sample = tuple[str, dict[str, str], float]


def scrape(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client (fails on invalid text)."""
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        v for n, got, v in samples if n == name and all(got.get(k) == want for k, want in labels.items())
    )


@pytest.fixture
async def gateway(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]
) -> AsyncIterator[GatewayUnderTest]:
    bases, states = fakes
    config = gateway_config(
        tmp_path,
        bases,
        routes={
            "fb": {"strategy": "fallback", "targets": [{"model": "anthropic-chat"}, {"model": "openai-chat"}]}
        },
        resilience={
            "retries": {"max_retries": 1, "backoff_base_ms": 1, "backoff_max_ms": 1},
            "breaker": {"failures": 100, "window_s": 30, "cooldown_s": 60},
        },
    )
    async with running_gateway(config, "127.0.0.1", 0) as url:
        yield GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states=states)


async def chat(
    session: aiohttp.ClientSession, url: str, model: str, stream: bool = False
) -> tuple[int, bytes]:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    async with session.post(f"{url}/v1/chat/completions", json=body) as r:
        return r.status, await r.read()


@pytest.fixture
async def scraped(gateway: GatewayUnderTest) -> tuple[list[Sample], list[dict[str, Any]]]:
    """The samples after one answer, one streamed answer, one unpriced answer, one upstream failure and one
    answer that fell back; with the ledger's rows of the same five requests."""
    async with aiohttp.ClientSession() as session:
        assert (await chat(session, gateway.url, "openai-chat"))[0] == 200
        status, raw = await chat(session, gateway.url, "openai-chat", stream=True)
        assert status == 200 and raw.endswith(b"data: [DONE]\n\n")
        assert (await chat(session, gateway.url, "llama"))[0] == 200
        gateway.states["anthropic"].scenario = "server_error"
        assert (await chat(session, gateway.url, "anthropic-chat"))[0] >= 500
        assert (await chat(session, gateway.url, "fb"))[0] == 200
        async with session.get(f"{gateway.url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    return scrape(text), await gateway.wait_rows(5)


async def test_requests_are_counted_under_the_genai_names_and_attributes(
    scraped: tuple[list[Sample], list[dict[str, Any]]],
) -> None:
    samples, rows = scraped
    names = {n for n, _, _ in samples}
    for family in (
        "gen_ai_client_token_usage",
        "gen_ai_server_request_duration_seconds",
        "gen_ai_server_time_to_first_token_seconds",
        "gen_ai_server_time_per_output_token_seconds",
    ):
        assert {f"{family}_bucket", f"{family}_count", f"{family}_sum"} <= names, family
    duration = [(got, v) for n, got, v in samples if n == "gen_ai_server_request_duration_seconds_count"]
    assert sum(v for _, v in duration) == len(rows) == 5
    answered = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "openai-chat",
        "gen_ai_response_model": "gpt-4o-mini",
        "modelyard_provider": "openai-fake",
        "modelyard_workload": "chat",
        "error_type": "",
    }
    assert (answered, 2.0) in duration, duration
    failed = [got for got, _ in duration if got["gen_ai_request_model"] == "anthropic-chat"]
    assert failed == [failed[0]] and failed[0]["error_type"] == rows[3]["error_kind"] != ""
    assert failed[0]["gen_ai_provider_name"] == "anthropic"
    self_hosted = [got for got, _ in duration if got["gen_ai_request_model"] == "llama"]
    assert self_hosted[0]["gen_ai_provider_name"] == "openai_compatible"


async def test_token_usage_by_type_matches_the_ledger(
    scraped: tuple[list[Sample], list[dict[str, Any]]],
) -> None:
    samples, rows = scraped
    for token_type, column in (("input", "input_tokens"), ("output", "output_tokens")):
        in_ledger = sum(r[column] for r in rows)
        assert in_ledger > 0
        assert total(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type=token_type) == in_ledger
    answered = [r for r in rows if r["input_tokens"] or r["output_tokens"]]
    assert total(samples, "gen_ai_client_token_usage_count", gen_ai_token_type="input") == len(answered)
    # Buckets are cumulative, +Inf holds every observation.
    inf = total(samples, "gen_ai_client_token_usage_bucket", gen_ai_token_type="output", le="+Inf")
    assert inf == len(answered)


async def test_first_token_and_per_token_times_come_from_the_streamed_answer_only(
    scraped: tuple[list[Sample], list[dict[str, Any]]],
) -> None:
    samples, rows = scraped
    streamed = [r for r in rows if r["streamed"]]
    assert len(streamed) == 1
    assert total(samples, "gen_ai_server_time_to_first_token_seconds_count") == 1
    assert total(samples, "gen_ai_server_time_to_first_token_seconds_sum") == pytest.approx(
        streamed[0]["ttft_ms"] / 1000
    )
    if streamed[0]["output_tokens"] > 1:
        expected = (
            (streamed[0]["latency_ms"] - streamed[0]["ttft_ms"]) / 1000 / (streamed[0]["output_tokens"] - 1)
        )
        assert total(samples, "gen_ai_server_time_per_output_token_seconds_sum") == pytest.approx(expected)


async def test_unpriced_requests_are_counted_apart_and_spend_matches_the_ledger(
    scraped: tuple[list[Sample], list[dict[str, Any]]],
) -> None:
    samples, rows = scraped
    unpriced = [r for r in rows if r["cost_pico_usd"] is None]
    assert [r["model"] for r in unpriced] == ["llama"]
    assert total(samples, "modelyard_unpriced_requests_total") == 1
    assert total(samples, "modelyard_unpriced_requests_total", gen_ai_request_model="llama") == 1
    priced = sum(r["cost_pico_usd"] or 0 for r in rows)
    assert priced > 0
    assert total(samples, "modelyard_spend_usd_total") == pytest.approx(priced / 1e12)
    assert total(samples, "modelyard_spend_usd_total", gen_ai_request_model="llama") == 0
    assert total(samples, "modelyard_cost_usd_total") == pytest.approx(priced / 1e12), "the first series stay"


async def test_retries_and_fallbacks_are_told_apart(
    scraped: tuple[list[Sample], list[dict[str, Any]]],
) -> None:
    samples, rows = scraped
    fell_back = [r for r in rows if r["model"] == "fb"]
    assert fell_back[0]["attempts"] == 3, "two tries on anthropic, then openai"
    assert total(samples, "modelyard_fallbacks_total", gen_ai_request_model="fb") == 1
    assert total(samples, "modelyard_retries_total", gen_ai_request_model="fb") == 1
    assert total(samples, "modelyard_retries_total", gen_ai_request_model="anthropic-chat") == 1
    assert total(samples, "modelyard_fallbacks_total", gen_ai_request_model="anthropic-chat") == 0


async def test_the_ledger_spool_and_circuits_are_exported(
    scraped: tuple[list[Sample], list[dict[str, Any]]],
) -> None:
    samples, _ = scraped
    names = {n for n, _, _ in samples}
    assert {"modelyard_ledger_spool_lag_seconds", "modelyard_ledger_spool_segments"} <= names
    assert total(samples, "modelyard_ledger_spool_lag_seconds") >= 0
    assert {got["target"] for n, got, _ in samples if n == "modelyard_circuit_state"} >= {
        "openai-chat",
        "llama",
    }


async def test_hostile_model_names_add_no_series(gateway: GatewayUnderTest) -> None:
    async def label_sets() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        async with aiohttp.ClientSession() as session, session.get(f"{gateway.url}/metrics") as r:
            text = await r.text()
        return {
            (n, tuple(sorted(got.items())))
            for n, got, _ in scrape(text)
            if not n.startswith("modelyard_ledger")
        }

    async with aiohttp.ClientSession() as session:
        assert (await chat(session, gateway.url, "attacker-0"))[0] == 404
        before = await label_sets()
        for number in range(1, 30):
            assert (await chat(session, gateway.url, f"attacker-{number}"))[0] == 404
    after = await label_sets()
    assert after == before
    assert not any("attacker" in value for _, labels in after for _, value in labels)


def test_made_up_model_names_are_counted_as_unknown_without_growing_the_label_map() -> None:
    """The request path keys its series by the row's raw labels; a name the config does not know is
    resolved to ``_unknown`` every time instead of being kept: clients choose those names."""
    from dataclasses import astuple

    from modelyard.config.routing import BreakerConfig
    from modelyard.gateway.metrics import UNKNOWN, GatewayMetrics
    from modelyard.routing.breaker import Breakers
    from tests.ledger_support import request

    metrics = GatewayMetrics(Breakers(BreakerConfig()), ["gpt-x"], ["support"])
    metrics.observe(astuple(request(0)))
    known = len(metrics._by_raw)
    for number in range(200):
        metrics.observe(
            astuple(request(number, model=f"attacker-{number}", status=404, error_kind="not_found"))
        )
    assert len(metrics._by_raw) == known
    unknown = [s for key, s in metrics.series.items() if key.request_model == UNKNOWN]
    assert len(unknown) == 1 and unknown[0].requests == 200
    assert sum(s.requests for key, s in metrics.series.items() if key.request_model == "gpt-x") == 1
