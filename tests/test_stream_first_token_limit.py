"""The route's time-to-first-token limit (``resilience.ttft_timeout_s``) on streamed requests: a target
whose stream has not produced its first token in time fails like any other attempt (retried, then the
route falls back), and the client sees none of it."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from tests.fakes import flaky
from tests.test_gateway_resilience import chat, fleet, models


async def test_a_stream_without_a_first_token_in_time_falls_back_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"primary": flaky.FaultPlan(rate=1.0, faults=("slow",)), "backup": flaky.FaultPlan()}
    config = {
        "models": models(a="primary", b="backup"),
        "routes": {"r": {"strategy": "fallback", "targets": [{"model": "a"}, {"model": "b"}]}},
        "resilience": {
            "retries": {"max_retries": 1, "backoff_base_ms": 5, "backoff_max_ms": 20},
            "ttft_timeout_s": 0.1,
        },
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        states["primary"].delay_s = 0.45  # under the 0.5 s read timeout: only the first-token limit ends it
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            status, raw = await chat(session, gateway.url, "r", stream=True)
        elapsed = time.perf_counter() - started
        (row,) = await gateway.wait_rows(1)
        attempts = await gateway.wait_rows(3, table="attempts")
    assert status == 200 and raw.endswith(b"data: [DONE]\n\n") and b'"error"' not in raw
    assert elapsed < 0.7, "each slow attempt was given up after 0.1 s, not waited for (0.45 s)"
    assert [(a["provider"], a["error_kind"]) for a in attempts] == [
        ("primary", "upstream_timeout"),
        ("primary", "upstream_timeout"),
        ("backup", None),
    ]
    assert row["status"] == 200 and row["attempts"] == 3 and "served by b" in row["route"]
