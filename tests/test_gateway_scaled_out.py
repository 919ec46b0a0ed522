"""Scaled out: two gateway replicas share their response cache through the real Redis on 127.0.0.1:6379
and their ledger through the real PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest
from redis.asyncio import Redis

from modelyard.app import running_gateway
from modelyard.config import parse_config
from tests.fakes import openai as fake_openai
from tests.fakes.common import FakeState, serve_app

pytestmark = pytest.mark.postgres

PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    schema = "scaled_" + secrets.token_hex(4)
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def test_replicas_share_cached_answers_and_one_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_schema: str
) -> None:
    monkeypatch.setenv("K", fake_openai.API_KEY)
    workload = "faq-" + secrets.token_hex(4)  # a fresh key space in the shared Redis
    state = FakeState()
    async with serve_app(fake_openai.create_app(state)) as upstream:

        def replica(n: int) -> Any:
            return parse_config(
                {
                    "providers": {"up": {"kind": "openai", "base_url": upstream + "/v1", "api_key_env": "K"}},
                    "models": {"m": {"provider": "up", "upstream_model": "gpt-4o-mini"}},
                    "workloads": {
                        workload: {
                            "data_class": "public",
                            "model": "m",
                            "cache": {"ttl_s": 60, "backend": "redis"},
                        }
                    },
                    "server": {"default_workload": workload},
                    "redis": {"url": "redis://127.0.0.1:6379/0"},
                    "ledger": {
                        "url": pg_schema,
                        "spool_dir": str(tmp_path / f"spool{n}"),
                        "flush_interval_ms": 20,
                    },
                }
            )

        body = {"model": "m", "messages": [{"role": "user", "content": "What are your opening hours?"}]}
        async with (
            running_gateway(replica(1), "127.0.0.1", 0) as one,
            running_gateway(replica(2), "127.0.0.1", 0) as two,
            aiohttp.ClientSession() as session,
        ):
            answers = []
            for url, headers in ((one, {}), (two, {}), (two, {"X-Modelyard-Data-Class": "restricted"})):
                async with session.post(
                    f"{url}/v1/chat/completions", data=orjson.dumps(body), headers=headers
                ) as r:
                    answers.append((r.status, await r.json()))
    assert [s for s, _ in answers[:2]] == [200, 200]
    assert answers[0][1]["choices"] == answers[1][1]["choices"]
    assert len(state.received) == 1, "replica two answered from the entry replica one wrote"
    assert answers[2][0] == 403, "restricted data may not reach the external provider, cache or not"
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    keys = [k async for k in redis.scan_iter(match=f"modelyard:cache:{workload}:*")]
    assert len(keys) == 1 and 0 < await redis.ttl(keys[0]) <= 60
    await redis.delete(*keys)
    await redis.aclose()
    with psycopg.connect(pg_schema) as conn:
        rows = conn.execute(
            "SELECT cache_hit, cost_pico_usd, cost_saved_pico_usd, status FROM requests ORDER BY ts"
        ).fetchall()
    assert sorted(r[3] for r in rows) == [200, 200, 403]
    hit = next(r for r in rows if r[0])
    miss = next(r for r in rows if not r[0] and r[3] == 200)
    assert hit[1] == 0 and hit[2] == miss[1] > 0
