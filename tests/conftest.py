"""Shared fixtures: fake providers on loopback and a real gateway in front of them."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelyard.config import parse_config
from modelyard.config.kinds import KINDS
from modelyard.config.schema import Config
from tests.fakes.common import FakeState, serve_app

FAKE_KEY = "sk-test-SECRET-0001"

#: provider kind → the fake module speaking its wire format, and how its base URL is formed. Self-hosted
#: OpenAI-compatible servers speak OpenAI's format: the OpenAI fake stands in for them (a second instance).
FAKES = {
    "openai": ("tests.fakes.openai", "/v1"),
    "openai_compatible": ("tests.fakes.openai", "/v1"),
    "anthropic": ("tests.fakes.anthropic", ""),
    "gemini": ("tests.fakes.gemini", ""),
}


def available_kinds() -> list[str]:
    """Every provider kind that speaks over the wire (the in-process model is tested in
    test_local_embeddings.py, the rerank-only APIs in test_api_rerank_vendors.py). A fake that fails to
    import fails the run: it once dropped its kind from the conformance suite without a word."""
    kinds = [kind for kind, spec in KINDS.items() if spec.wire and not spec.rerank_only]
    missing = [kind for kind in kinds if kind not in FAKES]
    if missing:
        raise LookupError(f"provider kinds without a fake in tests/conftest.py FAKES: {', '.join(missing)}")
    for kind in kinds:
        importlib.import_module(FAKES[kind][0])
    return kinds


@dataclass
class GatewayUnderTest:
    url: str
    config: Config
    db_path: Path
    states: dict[str, FakeState]
    extra: dict[str, Any] = field(default_factory=dict)

    def rows(self, table: str = "requests") -> list[dict[str, Any]]:
        if not self.db_path.exists():
            return []
        with sqlite3.connect(self.db_path) as conn:
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY ts")]
            except sqlite3.OperationalError:
                return []

    async def wait_rows(
        self, count: int, table: str = "requests", timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """The ledger writes off the request path: wait until ``count`` rows have landed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            rows = self.rows(table)
            if len(rows) >= count or asyncio.get_running_loop().time() > deadline:
                return rows
            await asyncio.sleep(0.02)


def gateway_config(tmp_path: Path, bases: dict[str, str], **overrides: Any) -> Config:
    providers: dict[str, Any] = {}
    models: dict[str, Any] = {}
    upstream = {
        "openai": "gpt-4o-mini",
        "openai_compatible": "meta-llama/Llama-3.1-8B-Instruct",
        "anthropic": "claude-haiku-4-5",
        "gemini": "gemini-2.5-flash",
    }
    for kind, base in bases.items():
        providers[f"{kind}-fake"] = {
            "kind": kind,
            "base_url": base,
            "api_key_env": f"FAKE_{kind.upper()}_KEY",
        }
        models[f"{kind}-chat"] = {"provider": f"{kind}-fake", "upstream_model": upstream[kind]}
    if "openai" in bases:
        models["openai-embed"] = {
            "provider": "openai-fake",
            "upstream_model": "text-embedding-3-small",
            "kind": "embedding",
        }
        providers["selfhosted"] = {
            "kind": "openai_compatible",
            "profile": "vllm",
            "base_url": bases["openai"],
            "api_key_env": "FAKE_OPENAI_KEY",  # vLLM started with --api-key
        }
        models["llama"] = {"provider": "selfhosted", "upstream_model": "meta-llama/Llama-3.1-8B-Instruct"}
    raw: dict[str, Any] = {
        "providers": providers,
        "models": models,
        "workloads": {
            "triage": {"data_class": "confidential", "model": next(iter(models))},
            "chat": {"data_class": "public"},
            "audited": {"data_class": "internal", "log_content": True},
        },
        "server": {"default_workload": "chat", "max_body_bytes": 64 * 1024},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": 20},
    }
    raw.update(overrides)
    return parse_config(raw)


@pytest.fixture
async def fakes(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[dict[str, str], dict[str, FakeState]]]:
    from contextlib import AsyncExitStack

    bases: dict[str, str] = {}
    states: dict[str, FakeState] = {}
    async with AsyncExitStack() as stack:
        for kind in available_kinds():
            module_name, suffix = FAKES[kind]
            module = importlib.import_module(module_name)
            state = FakeState()
            url = await stack.enter_async_context(serve_app(module.create_app(state)))
            bases[kind] = url + suffix
            states[kind] = state
            monkeypatch.setenv(f"FAKE_{kind.upper()}_KEY", FAKE_KEY)
        yield bases, states


@pytest.fixture
async def gateway(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]
) -> AsyncIterator[GatewayUnderTest]:
    from modelyard.app import running_gateway

    bases, states = fakes
    config = gateway_config(tmp_path, bases)
    async with running_gateway(config, "127.0.0.1", 0) as url:
        yield GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states=states)
