"""Fault injection, data-class policy, cascades, shadows and the cache, through the gateway's HTTP API
against loopback fakes. Assertions are on what clients saw, what the fakes received, and the ledger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from modelyard.app import running_gateway
from modelyard.config import parse_config
from tests.conftest import FAKE_KEY, GatewayUnderTest
from tests.fakes import flaky
from tests.fakes import openai as fake_openai
from tests.fakes.common import FakeState, serve_app
from tests.test_gateway_conformance import parse_stream


@asynccontextmanager
async def fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plans: dict[str, flaky.FaultPlan], **config: Any
) -> AsyncIterator[tuple[GatewayUnderTest, dict[str, FakeState]]]:
    """One flaky OpenAI fake per name in ``plans``, and a gateway configured with ``config`` over them."""
    monkeypatch.setenv("FAKE_OPENAI_KEY", FAKE_KEY)
    states = {name: FakeState() for name in plans}
    async with AsyncExitStack() as stack:
        bases = {
            name: await stack.enter_async_context(serve_app(flaky.create_app(states[name], plan)))
            for name, plan in plans.items()
        }
        providers = {
            name: {
                "kind": "openai_compatible" if name.startswith("self") else "openai",
                "base_url": bases[name] + "/v1",
                "api_key_env": "FAKE_OPENAI_KEY",
                "timeouts": {"connect": 1, "read": 0.5, "total": 5},
            }
            for name in plans
        }
        raw = {
            "providers": providers,
            "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": 20},
            "resilience": {"retries": {"max_retries": 1, "backoff_base_ms": 5, "backoff_max_ms": 20}},
            **config,
        }
        parsed = parse_config(raw)
        url = await stack.enter_async_context(running_gateway(parsed, "127.0.0.1", 0))
        yield GatewayUnderTest(url, parsed, tmp_path / "ledger.db", states), states


async def chat(
    session: aiohttp.ClientSession,
    url: str,
    model: str,
    *,
    stream: bool = False,
    headers: Any = None,
    **extra: Any,
) -> tuple[int, bytes]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}
    async with session.post(f"{url}/v1/chat/completions", data=orjson.dumps(body), headers=headers) as r:
        return r.status, await r.read()


def models(**names: str) -> dict[str, Any]:
    return {
        public: {"provider": provider, "upstream_model": "gpt-4o-mini"} for public, provider in names.items()
    }


@pytest.mark.parametrize(
    ("stream", "faults"),
    [
        # Non-streaming: every fault, including a malformed JSON body ("stream_cut" answers that way).
        (False, ("server_error", "overloaded", "rate_limited", "stream_cut", "reset", "slow")),
        # Streaming: faults before the first token (a cut after it is the next test's case).
        (True, ("server_error", "overloaded", "rate_limited", "reset", "slow")),
    ],
)
async def test_thirty_percent_faults_on_primary_reach_no_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool, faults: tuple[str, ...]
) -> None:
    plans = {"primary": flaky.FaultPlan(rate=0.3, faults=faults), "backup": flaky.FaultPlan()}
    config = {
        "models": models(a="primary", b="backup"),
        "routes": {"resilient": {"strategy": "fallback", "targets": [{"model": "a"}, {"model": "b"}]}},
        # A breaker that never opens here, so every request exercises retry and fallback.
        "resilience": {
            "retries": {"max_retries": 1, "backoff_base_ms": 5, "backoff_max_ms": 20},
            "breaker": {"failures": 1000},
        },
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        states["primary"].delay_s = 2.0  # "slow" outlasts the 0.5 s read timeout
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(chat(session, gateway.url, "resilient", stream=stream) for _ in range(120))
            )
        rows = await gateway.wait_rows(120)
    errors = [status for status, _ in results if status != 200]
    incomplete = [
        raw for _, raw in results if (stream and not raw.endswith(b"data: [DONE]\n\n")) or b'"error"' in raw
    ]
    injected = sum(1 for s in plans["primary"].served if s != "text")
    assert injected >= 25, "the fake really failed about 30% of the time"
    assert errors == [] and incomplete == [], "client-visible error rate must be 0%"
    assert all(r["status"] == 200 for r in rows)
    assert sum(r["attempts"] > 1 for r in rows) >= 25, "the failures were absorbed by retries and fallbacks"
    assert any("served by b" in (r["route"] or "") for r in rows)


async def test_breaker_opens_and_traffic_moves_to_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"primary": flaky.FaultPlan(rate=1.0, faults=("server_error",)), "backup": flaky.FaultPlan()}
    config = {
        "models": models(a="primary", b="backup"),
        "routes": {"r": {"strategy": "fallback", "targets": [{"model": "a"}, {"model": "b"}]}},
        "resilience": {
            "retries": {"max_retries": 0, "backoff_base_ms": 1, "backoff_max_ms": 1},
            "breaker": {"failures": 5, "window_s": 30, "cooldown_s": 60},
        },
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            for _ in range(20):
                status, _ = await chat(session, gateway.url, "r")
                assert status == 200
            opened_after = time.perf_counter() - started
            async with session.get(f"{gateway.url}/metrics") as r:
                metrics = await r.text()
        rows = await gateway.wait_rows(20)
    assert len(states["primary"].received) == 5, "after 5 failures the primary is no longer called"
    assert 'modelyard_circuit_state{target="a"} 2.0' in metrics
    assert sum("circuit open" in (r["route"] or "") for r in rows) == 15
    assert opened_after < 5


async def test_restricted_data_never_reaches_an_external_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"external": flaky.FaultPlan(), "selfhosted": flaky.FaultPlan(rate=1.0, faults=("server_error",))}
    config = {
        "models": models(ext="external", local="selfhosted"),
        "routes": {
            "mixed": {"strategy": "fallback", "targets": [{"model": "ext"}, {"model": "local"}]},
            "outside": {"strategy": "single", "targets": [{"model": "ext"}]},
        },
        "workloads": {
            "secret": {"data_class": "restricted", "model": "mixed"},
            "open": {"data_class": "public", "model": "mixed"},
        },
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            restricted = {"X-Modelyard-Workload": "secret"}
            tightened = {"X-Modelyard-Workload": "open", "X-Modelyard-Data-Class": "restricted"}
            outcomes = [
                await chat(
                    session, gateway.url, "mixed", headers=restricted
                ),  # self-hosted fails: no fallback out
                await chat(session, gateway.url, "mixed", headers=restricted, stream=True),
                await chat(session, gateway.url, "mixed", headers=tightened),
                await chat(session, gateway.url, "outside", headers=restricted),  # only an external target
                await chat(session, gateway.url, "ext", headers=restricted),
                await chat(
                    session, gateway.url, "mixed", headers={**restricted, "X-Modelyard-Data-Class": "public"}
                ),
            ]
            public = await chat(session, gateway.url, "mixed", headers={"X-Modelyard-Workload": "open"})
        rows = await gateway.wait_rows(7)
    assert states["external"].received[:1] and len(states["external"].received) == 1, (
        "only the public request"
    )
    assert [s for s, _ in outcomes] == [502, 502, 502, 403, 403, 403]
    assert public[0] == 200
    for _, raw in outcomes[3:]:
        error = orjson.loads(raw)["error"]
        assert error["type"] == "permission_error"
    audit = {r["request_id"]: r for r in rows}
    assert all(r["policy"] and r["policy"].startswith("restricted") for r in list(audit.values())[:5])
    assert sum("skip ext (policy)" in (r["route"] or "") for r in rows) >= 4


async def test_cascade_escalates_only_what_fails_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = ["json", "text", "json", "json", "text", "json", "json", "json", "text", "json"]
    plans = {"cheap": flaky.FaultPlan(script=list(script)), "strong": flaky.FaultPlan(script=["json"] * 10)}
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    config = {
        "models": {
            "mini": {"provider": "cheap", "upstream_model": "gpt-4o-mini"},
            "big": {"provider": "strong", "upstream_model": "gpt-4.1"},
        },
        "routes": {
            "extract": {
                "strategy": "cascade",
                "targets": [{"model": "mini"}, {"model": "big"}],
                "validators": [{"kind": "json_schema", "schema": schema}],
            }
        },
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            answers = [await chat(session, gateway.url, "extract", stream=i == 1) for i in range(10)]
        rows = await gateway.wait_rows(10)
        attempts = await gateway.wait_rows(13, table="attempts")
    for status, raw in answers[:1] + answers[2:]:
        assert status == 200 and orjson.loads(orjson.loads(raw)["choices"][0]["message"]["content"]) == {
            "answer": 42
        }
    chunks, done = parse_stream(answers[1][1])
    assert (
        done
        and "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == '{"answer": 42}'
    )
    escalated = [r for r in rows if "rejected" in (r["route"] or "")]
    assert len(escalated) == script.count("text") == 3
    assert len(states["strong"].received) == 3
    assert sum(1 for a in attempts if a["error_kind"] == "rejected") == 3
    spent = sum(r["cost_pico_usd"] for r in rows)
    strong_only = 10 * next(a["cost_pico_usd"] for a in attempts if a["provider"] == "strong")
    assert spent < strong_only / 2, f"cascade spent {spent} vs {strong_only} all on the strong model"


async def test_shadow_mirrors_off_the_request_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plans = {"primary": flaky.FaultPlan(), "candidate": flaky.FaultPlan(rate=1.0, faults=("slow",))}
    config = {
        "models": models(a="primary", c="candidate"),
        "routes": {
            "r": {"strategy": "shadow", "targets": [{"model": "a"}], "shadow": {"model": "c", "sample": 1.0}}
        },
        "providers_timeout": None,
    }
    del config["providers_timeout"]
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        states["candidate"].delay_s = 0.3
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            status, raw = await chat(session, gateway.url, "r")
            took = time.perf_counter() - started
        assert status == 200 and orjson.loads(raw)["choices"][0]["message"]["content"] == "Hello, world!"
        assert took < 0.25, "the client does not wait for the shadow"
        rows = await gateway.wait_rows(2)
    primary, shadow = sorted(rows, key=lambda r: r["shadow_of"] is not None)
    assert shadow["shadow_of"] == primary["request_id"] and shadow["model"] == "c"
    assert shadow["status"] == 200 and shadow["input_tokens"] == 11
    assert (primary["purpose"], shadow["purpose"]) == ("answer", "shadow")


async def test_exact_cache_hits_save_cost_and_respect_data_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"up": flaky.FaultPlan()}
    config = {
        "models": models(m="up"),
        "workloads": {"faq": {"data_class": "public", "model": "m", "cache": {"ttl_s": 60}}},
        "server": {"default_workload": "faq"},
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            first = await chat(session, gateway.url, "m")
            second = await chat(session, gateway.url, "m")
            streamed = await chat(
                session, gateway.url, "m", stream=True, stream_options={"include_usage": True}
            )
            tighter = await chat(
                session, gateway.url, "m", headers={"X-Modelyard-Data-Class": "confidential"}
            )
            other = await chat(session, gateway.url, "m", temperature=0.5)
        rows = await gateway.wait_rows(5)
    assert len(states["up"].received) == 3, "two hits served without calling upstream"
    assert orjson.loads(first[1])["choices"] == orjson.loads(second[1])["choices"]
    chunks, done = parse_stream(streamed[1])
    assert (
        done
        and "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == "Hello, world!"
    )
    assert tighter[0] == other[0] == 200
    hits = [r for r in rows if r["cache_hit"]]
    assert len(hits) == 2
    assert all(
        h["cost_pico_usd"] == 0 and h["cost_saved_pico_usd"] == rows[0]["cost_pico_usd"] > 0 for h in hits
    )


async def test_client_disconnect_cancels_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"up": flaky.FaultPlan(rate=1.0, faults=("slow",))}
    config = {"models": models(m="up")}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        states["up"].delay_s = 0.4
        for stream in (False, True):
            async with aiohttp.ClientSession() as session:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(chat(session, gateway.url, "m", stream=stream), 0.1)
        rows = await gateway.wait_rows(2)
        await asyncio.sleep(0.5)  # the upstream's "generation" ends
    assert [r["status"] for r in rows] == [499, 499]
    assert all(r["client_cancelled"] == 1 for r in rows)
    assert states["up"].abandoned == 2, "the upstream call must stop when the client goes away"


async def test_stream_cut_after_first_byte_is_never_retried_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"primary": flaky.FaultPlan(rate=1.0, faults=("stream_cut",)), "backup": flaky.FaultPlan()}
    config = {
        "models": models(a="primary", b="backup"),
        "routes": {"r": {"strategy": "fallback", "targets": [{"model": "a"}, {"model": "b"}]}},
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, raw = await chat(session, gateway.url, "r", stream=True)
        (row,) = await gateway.wait_rows(1)
    chunks, done = parse_stream(raw)
    assert status == 200 and not done
    assert chunks[-1]["error"]["code"] == "upstream_stream_cut"
    assert states["backup"].received == [], "bytes already reached the client: no silent second answer"
    assert row["error_kind"] == "upstream_stream_cut" and row["usage_estimated"] == 1


def test_fake_key_is_the_conftest_key() -> None:
    assert fake_openai.API_KEY == FAKE_KEY


@pytest.mark.parametrize("stream", [False, True])
async def test_pii_is_pseudonymised_upstream_and_restored_for_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    plans = {"up": flaky.FaultPlan(script=["echo"] * 3), "masked": flaky.FaultPlan(script=["echo"] * 3)}
    config = {
        "models": models(m="up", x="masked"),
        "workloads": {
            "hr": {"data_class": "confidential", "model": "m"},
            "ops": {"data_class": "restricted", "model": "x"},
        },
        "policy": {
            "data_classes": {
                "confidential": {"pii": "pseudonymise", "restore_pii": True},
                "restricted": {"allow": ["any"], "pii": "mask"},
            }
        },
    }
    secret = "Mail ana.lima@example.org or call +44 20 7946 0958 about card 4111 1111 1111 1111."
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            body = {"messages": [{"role": "user", "content": secret}], "stream": stream}
            answers = {}
            for workload in ("hr", "ops"):
                headers = {"X-Modelyard-Workload": workload}
                async with session.post(
                    f"{gateway.url}/v1/chat/completions", json=body, headers=headers
                ) as r:
                    assert r.status == 200
                    answers[workload] = await r.read()
        rows = await gateway.wait_rows(2)
    seen_upstream = [orjson.dumps(s.received[0].body).decode() for s in (states["up"], states["masked"])]
    for text in seen_upstream:
        assert "ana.lima@example.org" not in text and "7946" not in text and "4111" not in text
    assert "<EMAIL_1>" in seen_upstream[0] and "[EMAIL]" in seen_upstream[1]

    def text_of(raw: bytes) -> str:
        if not stream:
            return str(orjson.loads(raw)["choices"][0]["message"]["content"])
        chunks, done = parse_stream(raw)
        assert done
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])

    assert text_of(answers["hr"]) == secret, "pseudonyms are restored for the client"
    assert "[EMAIL]" in text_of(answers["ops"]), "masking is not reversible"
    notes = sorted(r["policy"] for r in rows)
    assert any("pii pseudonymise: CARD 1, EMAIL 1, PHONE 1" in n for n in notes)
    assert any("pii mask: CARD 1, EMAIL 1, PHONE 1" in n for n in notes)
    assert all("ana.lima" not in orjson.dumps(r).decode() for r in rows)


async def test_cascade_judge_calls_are_metered_and_a_fail_escalates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"cheap": flaky.FaultPlan(), "strong": flaky.FaultPlan(), "grader": flaky.FaultPlan()}
    config = {
        "models": {
            "mini": {"provider": "cheap", "upstream_model": "gpt-4o-mini"},
            "big": {"provider": "strong", "upstream_model": "gpt-4.1"},
            "judge": {"provider": "grader", "upstream_model": "gpt-4o-mini"},
        },
        "routes": {
            "graded": {
                "strategy": "cascade",
                "targets": [{"model": "mini"}, {"model": "big"}],
                # The grader fake answers "Hello, world!": not PASS, so every answer is escalated.
                "validators": [{"kind": "judge", "model": "judge", "rubric": "Is it polite?"}],
            }
        },
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, _ = await chat(session, gateway.url, "graded")
        (row,) = await gateway.wait_rows(1)
        attempts = await gateway.wait_rows(4, table="attempts")
    assert status == 200
    assert [a["purpose"] for a in attempts] == ["answer", "judge", "answer", "judge"]
    assert [a["error_kind"] for a in attempts if a["purpose"] == "answer"] == ["rejected", "rejected"]
    assert "Is it polite?" in orjson.dumps(states["grader"].received[0].body).decode()
    assert row["error_kind"] == "validation_failed" and "judge judge: FAIL" in row["route"]
    assert row["cost_pico_usd"] == sum(a["cost_pico_usd"] for a in attempts), (
        "judge calls are part of the cost"
    )


async def test_upstream_timeout_is_a_504(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plans = {"up": flaky.FaultPlan(rate=1.0, faults=("slow",))}
    async with fleet(tmp_path, monkeypatch, plans, models=models(m="up")) as (gateway, states):
        states["up"].delay_s = 1.0  # past the 0.5 s read timeout, on the first try and the retry
        async with aiohttp.ClientSession() as session:
            status, raw = await chat(session, gateway.url, "m")
        (row,) = await gateway.wait_rows(1)
    assert status == 504
    assert orjson.loads(raw)["error"]["code"] == "upstream_timeout"
    assert row["attempts"] == 2 and row["error_kind"] == "upstream_timeout"


async def test_a_gateway_bug_is_an_openai_shaped_500_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def odd_answer(request: web.Request) -> web.Response:
        return web.json_response({"id": "x", "object": "chat.completion", "choices": 5, "usage": None})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", odd_answer)
    monkeypatch.setenv("ODD_KEY", "k")
    async with serve_app(app) as base:
        config = parse_config(
            {
                "providers": {"odd": {"kind": "openai", "base_url": base + "/v1", "api_key_env": "ODD_KEY"}},
                "models": {"m": {"provider": "odd"}},
                "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}", "flush_interval_ms": 20},
            }
        )
        async with running_gateway(config, "127.0.0.1", 0) as url, aiohttp.ClientSession() as session:
            status, raw = await chat(session, url, "m")
    assert status == 500
    error = orjson.loads(raw)["error"]
    assert error["code"] == "internal_error" and "Traceback" not in error["message"]


async def test_a_provider_without_its_key_is_refused_locally_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_SET", raising=False)
    state = FakeState()
    async with serve_app(flaky.create_app(state, flaky.FaultPlan())) as base:
        config = parse_config(
            {
                "providers": {
                    "up": {"kind": "openai", "base_url": base + "/v1", "api_key_env": "NO_SUCH_KEY_SET"}
                },
                "models": {"m": {"provider": "up"}},
                "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}", "flush_interval_ms": 20},
            }
        )
        async with running_gateway(config, "127.0.0.1", 0) as url, aiohttp.ClientSession() as session:
            results = [await chat(session, url, "m", stream=stream) for stream in (False, True)]
    for status, raw in results:
        error = orjson.loads(raw)["error"]
        assert status == 503 and error["code"] == "upstream_credentials_missing"
        assert "set the environment variable NO_SUCH_KEY_SET" in error["message"]
    assert state.received == [], "no unauthenticated request was sent upstream"


async def test_a_token_reaches_the_client_while_the_upstream_is_still_thinking(tmp_path: Path) -> None:
    """The relay writes events that arrived together in one write, but never holds one back waiting for
    the network: the first token must reach the client long before the upstream's pause ends."""
    pause_s = 0.4

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    async def thinking(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(event({"role": "assistant", "content": ""}) + event({"content": "Hel"}))
        await asyncio.sleep(pause_s)
        await response.write(event({"content": "lo"}) + event({}, "stop") + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", thinking)
    async with serve_app(app) as base:
        config = parse_config(
            {
                "providers": {"up": {"kind": "openai_compatible", "base_url": base + "/v1"}},
                "models": {"m": {"provider": "up"}},
                "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
            }
        )
        async with running_gateway(config, "127.0.0.1", 0) as url, aiohttp.ClientSession() as session:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            started = time.monotonic()
            arrivals: list[tuple[float, bytes]] = []
            async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                async for piece in response.content.iter_any():
                    arrivals.append((time.monotonic() - started, piece))
    first_token = next(t for t, piece in arrivals if b'"Hel"' in piece)
    raw = b"".join(piece for _, piece in arrivals)
    chunks, done = parse_stream(raw)
    assert done and "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello"
    assert first_token < pause_s / 2, f"first token after {first_token:.3f}s: held for the network"
    assert arrivals[-1][0] >= pause_s
