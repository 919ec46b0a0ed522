"""A half-open circuit's one probe ends however its request ends (issue 13 row 9): answered, failed
upstream, cancelled by the client, or failed inside the gateway. Once the probe was left taken by a
cancellation, and the target answered 503 for good after it recovered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from modelyard.config.routing import BreakerConfig, ResilienceConfig, RetryConfig
from modelyard.errors import UpstreamError
from modelyard.gateway.attempts import AttemptRunner
from modelyard.gateway.metering import Outcome, RequestContext
from modelyard.routing.breaker import Breakers
from modelyard.routing.plan import Plan
from tests.fakes import flaky
from tests.test_gateway_resilience import chat, fleet, models


@dataclass(frozen=True)
class Probed:
    public_model: str = "a"
    provider: str = "p"
    provider_kind: str = "openai"
    hosting: str = "external"
    upstream_model: str = "m"
    price: Any = None
    price_version: Any = None


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def answer(_: Any) -> str:
    return "ok"


async def upstream_down(_: Any) -> str:
    raise UpstreamError("down", provider="p", status=503)


async def cancelled(_: Any) -> str:
    raise asyncio.CancelledError


async def gateway_bug(_: Any) -> str:
    raise KeyError("a bug around the call")


PROBES = [
    # (name, the probe's call, what it raises, the state after it, may the next request probe or pass)
    ("answered", answer, None, "closed", True),
    ("failed upstream", upstream_down, UpstreamError, "open", False),
    ("cancelled by the client", cancelled, asyncio.CancelledError, "half_open", True),
    ("failed inside the gateway", gateway_bug, KeyError, "half_open", True),
]


@pytest.mark.parametrize(
    ("name", "probe", "raises", "state", "next_may_go"), PROBES, ids=[p[0] for p in PROBES]
)
async def test_every_end_of_a_probe_frees_it(
    name: str, probe: Any, raises: type[BaseException] | None, state: str, next_may_go: bool
) -> None:
    clock = Clock()
    breakers = Breakers(BreakerConfig(failures=1, window_s=10, cooldown_s=5), clock)
    runner = AttemptRunner(ResilienceConfig(retries=RetryConfig(max_retries=0)), breakers)
    target: Any = Probed()
    breakers["a"].failed()  # open
    clock.now = 6.0  # past the cool-down: the next request is the probe
    ctx = RequestContext(request_id="r", ts=0.0, t0=0.0, endpoint="chat")
    plan: Plan[Any] = Plan("a", "single", [target])
    if raises is None:
        await runner.run(ctx, plan, probe, Outcome(status=200))
    else:
        with pytest.raises(raises):
            await runner.run(ctx, plan, probe, Outcome(status=200))
    assert breakers["a"].state == state
    assert breakers["a"].available() is next_may_go
    # Planning skips asking each breaker only while this count says every circuit is closed.
    assert breakers.not_closed == (0 if breakers["a"].state == "closed" else 1)


def test_the_count_of_circuits_not_closed_follows_every_transition() -> None:
    clock = Clock()
    breakers = Breakers(BreakerConfig(failures=1, window_s=10, cooldown_s=5), clock)
    assert breakers.not_closed == 0 and breakers["a"].available() and breakers["b"].available()
    breakers["a"].failed()  # open
    breakers["b"].failed()  # open
    assert breakers.not_closed == 2
    clock.now = 6.0
    assert breakers["a"].available()  # half-open: still not closed
    assert breakers.not_closed == 2
    breakers["a"].failed()  # the probe failed: open again
    assert breakers.not_closed == 2
    clock.now = 12.0
    assert breakers["a"].available()
    breakers["a"].succeeded()  # closed
    assert breakers.not_closed == 1
    breakers["a"].succeeded()  # closed again: no transition, no count
    assert breakers.not_closed == 1
    assert breakers["b"].available()
    breakers["b"].succeeded()
    assert breakers.not_closed == 0


async def test_a_probe_cancelled_by_its_client_does_not_shut_the_target_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = flaky.FaultPlan(script=["server_error", "slow", "text"])
    config = {
        "models": models(a="primary"),
        "resilience": {
            "retries": {"max_retries": 0},
            "breaker": {"failures": 1, "window_s": 30, "cooldown_s": 0.05},
        },
    }
    async with fleet(tmp_path, monkeypatch, {"primary": plan}, **config) as (gateway, states):
        states["primary"].delay_s = 5.0
        async with aiohttp.ClientSession() as session:
            status, _ = await chat(session, gateway.url, "a")
            assert status == 502  # the circuit opens
            await asyncio.sleep(0.1)  # past the cool-down
            with pytest.raises(TimeoutError):  # the probe: the client gives up before the answer
                async with asyncio.timeout(0.3):
                    await chat(session, gateway.url, "a")
        for _ in range(50):  # until the gateway has seen the client leave and cancelled the probe
            async with aiohttp.ClientSession() as session:
                status, body = await chat(session, gateway.url, "a")
            if status != 503:
                break
            await asyncio.sleep(0.05)
        assert status == 200, body
        assert plan.served == ["server_error", "slow", "text"]
