"""Client keys: stored hashed, attribute calls to tenants, limit workloads, tighten data classes, and a
tenant sees only its own usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from click.testing import CliRunner

from modelyard.app import running_gateway
from modelyard.cli.main import cli
from modelyard.config import parse_config
from modelyard.errors import ConfigError
from modelyard.gateway.auth import hash_key
from tests.conftest import GatewayUnderTest, gateway_config
from tests.fakes.common import FakeState

KEY_A = "myd-tenant-a-0123456789abcdefghijklmnopqrstuv"
KEY_B = "myd-tenant-b-0123456789abcdefghijklmnopqrstuv"


async def call(url: str, key: str | None, **headers: str) -> tuple[int, Any]:
    body = {"model": "openai-chat", "messages": [{"role": "user", "content": "hi"}]}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{url}/v1/chat/completions", data=orjson.dumps(body), headers=headers) as r,
    ):
        return r.status, await r.json()


async def usage(url: str, key: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as s, s.get(f"{url}/v1/usage", headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("required", [True, False])
async def test_keys_tenants_and_usage_isolation(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]], required: bool
) -> None:
    bases, states = fakes
    auth = {
        "required": required,
        "keys": {
            "a": {"sha256": hash_key(KEY_A), "tenant": "acme"},
            "b": {
                "sha256": hash_key(KEY_B),
                "tenant": "globex",
                "workloads": ["chat"],
                "data_class": "confidential",
            },
        },
    }
    config = gateway_config(tmp_path, {"openai": bases["openai"]}, auth=auth)
    async with running_gateway(config, "127.0.0.1", 0) as url:
        gateway = GatewayUnderTest(url, config, tmp_path / "ledger.db", states)
        assert (await call(url, KEY_A))[0] == 200
        assert (await call(url, KEY_A, **{"X-Modelyard-Workload": "triage"}))[0] == 200
        assert (await call(url, KEY_B))[0] == 200
        status, body = await call(url, KEY_B, **{"X-Modelyard-Workload": "triage"})
        assert status == 403 and body["error"]["code"] == "workload_not_allowed"
        status, body = await call(url, "myd-not-a-real-key")
        assert status == 401 and body["error"]["type"] == "authentication_error"
        anonymous = await call(url, None)
        sdk_style = await call(url, "sk-whatever-the-sdk-sends")
        if required:
            assert anonymous[0] == 401 and anonymous[1]["error"]["code"] == "missing_api_key"
            assert sdk_style[0] == 401
        else:
            assert anonymous[0] == sdk_style[0] == 200
        rows = await gateway.wait_rows(8 if not required else 7)
        by_tenant = {(r["tenant"], r["api_key_id"], r["status"], r["data_class"]) for r in rows}
        assert ("acme", "a", 200, "public") in by_tenant
        assert ("globex", "b", 200, "confidential") in by_tenant, "the key's class tightened the workload's"
        status, mine = await usage(url, KEY_A)
        assert status == 200 and mine["tenant"] == "acme"
        assert sum(g["requests"] for g in mine["groups"]) == 2
        status, theirs = await usage(url, KEY_B)
        assert sum(g["requests"] for g in theirs["groups"]) == 2  # one answered, one refused
        assert (await usage(url, None))[0] == 401
    db = (tmp_path / "ledger.db").read_bytes()
    assert KEY_A.encode() not in db and KEY_B.encode() not in db, "keys are never stored, only hashes"


def test_required_auth_needs_keys() -> None:
    with pytest.raises(ConfigError, match="modelyard keys new"):
        parse_config({"providers": {}, "models": {}, "auth": {"required": True}})


def test_keys_new_prints_a_key_once_and_only_its_hash_for_the_config() -> None:
    result = CliRunner().invoke(
        cli, ["keys", "new", "--id", "k1", "--tenant", "acme", "--data-class", "restricted"]
    )
    assert result.exit_code == 0, result.output
    key = next(line.split(": ")[1] for line in result.stderr.splitlines() if line.startswith("API key"))
    assert key.startswith("myd-") and key not in result.stdout
    assert hash_key(key) in result.stdout and "data_class: restricted" in result.stdout
