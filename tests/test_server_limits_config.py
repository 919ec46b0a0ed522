"""``server.limits`` in the config: its defaults are the server's, bad values are refused naming the field,
and the values reach the server the application starts (over real loopback HTTP)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from modelyard.app import running_gateway
from modelyard.config import parse_config
from modelyard.config.server_limits import ServerLimitsConfig
from modelyard.errors import ConfigError
from modelyard.transport.limits import Limits


def raw_config(tmp_path: Path, **limits: Any) -> dict[str, Any]:
    return {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "p"}},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "writer": "thread"},
        "server": {"limits": limits},
    }


def test_the_configs_defaults_are_the_servers() -> None:
    assert Limits(**ServerLimitsConfig().model_dump()) == Limits()
    assert {f.name for f in dataclasses.fields(Limits)} == set(ServerLimitsConfig.model_fields)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_headers": 2}, "server.limits.max_headers"),
        ({"idle_timeout_s": 0}, "server.limits.idle_timeout_s"),
        ({"max_url_bytes": 70000}, "cannot exceed max_head_bytes"),
        ({"max_conections": 5}, "server.limits.max_conections"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(
    tmp_path: Path, limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw_config(tmp_path, **limits))


async def exchange(url: str, head: bytes) -> int:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


async def test_configured_limits_reach_the_server(tmp_path: Path) -> None:
    config = parse_config(raw_config(tmp_path, max_url_bytes=512, max_headers=16))
    async with running_gateway(config, "127.0.0.1", 0) as url:
        ok = await exchange(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        long_url = await exchange(url, b"GET /healthz?q=" + b"a" * 600 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        headers = b"".join(b"X-%d: y\r\n" % i for i in range(20))
        many = await exchange(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert (ok, long_url, many) == (200, 414, 431)
