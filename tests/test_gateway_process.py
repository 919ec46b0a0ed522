"""The gateway as a real process: ``kill -9`` loses no answered request's row, and credentials never
appear in its logs, its errors or its ledger."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from tests.fakes import openai as fake_openai
from tests.fakes.common import FakeState, free_port, serve_app

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, upstream: str, *, flush_ms: int) -> Path:
    config = {
        "providers": {"up": {"kind": "openai", "base_url": upstream + "/v1", "api_key_env": "UP_KEY"}},
        "models": {"gpt-4o-mini": {"provider": "up"}},
        "workloads": {"w": {"data_class": "internal"}},
        "server": {"default_workload": "w"},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": flush_ms},
    }
    path = tmp_path / "modelyard.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@asynccontextmanager
async def gateway_process(config: Path, port: int, log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "UP_KEY": fake_openai.API_KEY}
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "-v", "serve", "-c", str(config), "--port", str(port)],
            stdout=sink,
            stderr=sink,
            env=env,
        )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process, log)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


async def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise AssertionError(f"gateway exited: {log.read_text()}")
        try:
            async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("gateway did not start")


def ledger_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        try:
            return {row[0] for row in conn.execute("SELECT request_id FROM requests")}
        except sqlite3.OperationalError:  # the store is created at the first flush
            return set()


async def chat(session: aiohttp.ClientSession, url: str, stream: bool) -> str | None:
    """The request id of an answer the client received whole, or None if it did not."""
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    try:
        async with session.post(f"{url}/v1/chat/completions", data=orjson.dumps(body)) as r:
            raw = await r.read()
            if r.status != 200 or (stream and not raw.endswith(b"data: [DONE]\n\n")):
                return None
            return r.headers["X-Request-Id"]
    except aiohttp.ClientError:
        return None


async def test_sigkill_loses_no_answered_row(tmp_path: Path) -> None:
    state = FakeState()
    async with serve_app(fake_openai.create_app(state)) as upstream:
        # A flush interval far longer than the test: every row is only in the spool when the process dies.
        config = write_config(tmp_path, upstream, flush_ms=60_000)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "gateway.log"
        answered: list[str] = []
        async with gateway_process(config, port, log) as process, aiohttp.ClientSession() as session:
            for i in range(40):
                rid = await chat(session, url, stream=i % 2 == 0)
                assert rid is not None
                answered.append(rid)
            # Now requests in flight (the fake answers slowly) when the process is killed.
            state.scenario, state.delay_s = "slow", 2.0
            in_flight = [asyncio.create_task(chat(session, url, stream=False)) for _ in range(10)]
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            late = [rid for rid in await asyncio.gather(*in_flight) if rid]
            answered.extend(late)
        state.scenario, state.delay_s = "text", 0.0
        assert ledger_ids(tmp_path / "ledger.db") == set(), "nothing was flushed before the kill"
        async with gateway_process(config, port, log):
            # The restarted ledger ingester replays the spool once its own start-up is done (~0.5-0.7 s of
            # imports, more on a loaded machine): wait for it rather than guess how long it takes.
            deadline = asyncio.get_running_loop().time() + 20
            recorded = ledger_ids(tmp_path / "ledger.db")
            while not set(answered) <= recorded and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                recorded = ledger_ids(tmp_path / "ledger.db")
    assert set(answered) <= recorded, f"lost rows: {set(answered) - recorded}"
    assert len(answered) >= 40


async def test_credentials_never_leak(tmp_path: Path) -> None:
    state = FakeState()
    secret = fake_openai.API_KEY
    async with serve_app(fake_openai.create_app(state)) as upstream:
        config = write_config(tmp_path, upstream, flush_ms=20)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "gateway.log"
        bodies: list[bytes] = []
        async with gateway_process(config, port, log), aiohttp.ClientSession() as session:
            # auth_error: the fake echoes the key in its message, as OpenAI echoes part of a bad key.
            for scenario in ("auth_error", "rate_limited", "server_error", "bad_request", "text"):
                state.scenario = scenario  # type: ignore[assignment]
                for stream in (False, True):
                    body = {
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": "x"}],
                        "stream": stream,
                    }
                    async with session.post(f"{url}/v1/chat/completions", data=orjson.dumps(body)) as r:
                        bodies.append(await r.read())
            await asyncio.sleep(0.3)
        db = tmp_path / "ledger.db"
    assert len(bodies) == 10
    assert all(secret not in b.decode() for b in bodies), "a client saw the upstream key"
    assert secret not in log.read_text(), "the key is in the gateway's log"
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert secret not in dump and "SECRET" not in dump
    assert dump.count('INSERT INTO "requests"') == 10
