"""`GET /v1/models/{id}`, a model's kind inferred from the price catalog, and token-id embedding inputs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from click.testing import CliRunner

from modelyard.catalog.prices import load_catalog
from modelyard.config import parse_config
from modelyard.gateway.model_kinds import kind_conflicts, resolved_kind
from tests.conftest import GatewayUnderTest
from tests.fakes.common import FakeState

CATALOG = load_catalog()


def config_with(models: dict[str, Any], bases: dict[str, str] | None = None, tmp: Path | None = None) -> Any:
    bases = bases or {"openai": "http://127.0.0.1:9/v1", "gemini": "http://127.0.0.1:9"}
    raw: dict[str, Any] = {
        "providers": {
            "oa": {"kind": "openai", "base_url": bases["openai"], "api_key_env": "FAKE_OPENAI_KEY"},
            "gm": {"kind": "gemini", "base_url": bases["gemini"], "api_key_env": "FAKE_GEMINI_KEY"},
        },
        "models": models,
    }
    if tmp is not None:
        raw["ledger"] = {"url": f"sqlite:///{tmp / 'ledger.db'}", "flush_interval_ms": 20}
    return parse_config(raw)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"provider": "oa", "upstream_model": "text-embedding-3-small"}, "embedding"),
        ({"provider": "gm", "upstream_model": "gemini-embedding-001"}, "embedding"),
        ({"provider": "oa", "upstream_model": "gpt-4o-mini"}, "chat"),
        ({"provider": "oa", "upstream_model": "not-in-the-catalog"}, "chat"),
        # The config wins over the catalog, both ways.
        ({"provider": "oa", "upstream_model": "text-embedding-3-small", "kind": "chat"}, "chat"),
        ({"provider": "oa", "upstream_model": "gpt-4o-mini", "kind": "embedding"}, "embedding"),
        # price_as names the entry the catalog is asked about.
        (
            {"provider": "oa", "upstream_model": "my-embedder", "price_as": "text-embedding-3-large"},
            "embedding",
        ),
    ],
)
def test_kind_is_the_configs_else_the_catalogs_else_chat(model: dict[str, Any], expected: str) -> None:
    config = config_with({"m": model})
    assert resolved_kind(config, "m", CATALOG) == expected


def test_a_written_kind_the_catalog_contradicts_is_one_warning_naming_the_line() -> None:
    config = config_with(
        {
            "embed": {"provider": "oa", "upstream_model": "text-embedding-3-small", "kind": "chat"},
            "fine": {"provider": "oa", "upstream_model": "text-embedding-3-small", "kind": "embedding"},
            "inferred": {"provider": "oa", "upstream_model": "text-embedding-3-small"},
        }
    )
    (line,) = kind_conflicts(config, CATALOG)
    assert line.startswith("models.embed.kind is 'chat'") and "kind: embedding" in line


def test_check_prints_the_kind_conflict_as_a_warning(tmp_path: Path) -> None:
    from modelyard.cli.serve import check_command

    path = tmp_path / "modelyard.yaml"
    path.write_text(
        "providers:\n  oa: {kind: openai, base_url: 'http://127.0.0.1:9/v1', api_key_env: HOME}\n"
        "models:\n  embed: {provider: oa, upstream_model: text-embedding-3-small, kind: chat}\n"
    )
    result = CliRunner().invoke(check_command, ["--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: models.embed.kind is 'chat'" in result.output


@pytest.fixture
async def kinds_gateway(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]
) -> AsyncIterator[GatewayUnderTest]:
    from modelyard.app import running_gateway

    bases, states = fakes
    config = config_with(
        {
            "small-embed": {"provider": "oa", "upstream_model": "text-embedding-3-small"},
            "gemini-embed": {"provider": "gm", "upstream_model": "gemini-embedding-001"},
            "org/chat-model": {"provider": "oa", "upstream_model": "gpt-4o-mini"},
        },
        bases,
        tmp_path,
    )
    async with running_gateway(config, "127.0.0.1", 0) as url:
        yield GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states=states)


async def post(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=orjson.dumps(body)) as r:
        return r.status, orjson.loads(await r.read())


async def test_models_retrieve_through_the_sdk(kinds_gateway: GatewayUnderTest) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{kinds_gateway.url}/v1", api_key="k", max_retries=0)
    model = await sdk.models.retrieve("small-embed")
    assert model.id == "small-embed" and model.object == "model"
    assert model.model_extra == {"kind": "embedding"}, "the catalog's kind, the config said none"
    chat = await sdk.models.retrieve("org/chat-model")  # an id with a slash
    assert chat.id == "org/chat-model" and chat.model_extra == {"kind": "chat"}
    listed = {m.id: m.model_extra for m in (await sdk.models.list()).data}
    assert listed["small-embed"] == {"kind": "embedding"}
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.models.retrieve("nope")
    assert "small-embed" in str(caught.value), "the 404 names the models that exist"
    await sdk.close()


async def test_embeddings_work_on_an_inferred_embedding_model(kinds_gateway: GatewayUnderTest) -> None:
    status, body = await post(f"{kinds_gateway.url}/v1/embeddings", {"model": "small-embed", "input": "a"})
    assert status == 200 and len(body["data"]) == 1


async def test_the_wrong_kind_error_names_the_config_line(kinds_gateway: GatewayUnderTest) -> None:
    status, body = await post(
        f"{kinds_gateway.url}/v1/chat/completions",
        {"model": "small-embed", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert status == 400 and body["error"]["code"] == "wrong_model_kind"
    assert "set 'kind: chat' under models.small-embed" in body["error"]["message"]


async def test_token_ids_reach_openai_and_gemini_refuses_them_clearly(
    kinds_gateway: GatewayUnderTest,
) -> None:
    url = f"{kinds_gateway.url}/v1/embeddings"
    status, body = await post(url, {"model": "small-embed", "input": [[15339, 1917], [9906]]})
    assert status == 200 and len(body["data"]) == 2
    received = kinds_gateway.states["openai"].received[-1].body
    assert received["input"] == [[15339, 1917], [9906]], "token ids passed through as sent"
    gemini_calls = len(kinds_gateway.states["gemini"].received)
    status, body = await post(url, {"model": "gemini-embed", "input": [15339, 1917]})
    assert status == 400 and body["error"]["code"] == "token_ids_unsupported"
    assert "Gemini embeds text, not token ids" in body["error"]["message"]
    assert len(kinds_gateway.states["gemini"].received) == gemini_calls, "nothing went upstream"
    rows = await kinds_gateway.wait_rows(3)
    assert rows[-1]["status"] == 400 and rows[-1]["error_kind"] == "token_ids_unsupported"
