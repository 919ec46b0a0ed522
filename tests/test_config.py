"""The config fails fast at start-up with messages that name the field path and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from modelyard.cli.main import cli
from modelyard.config import load_config, parse_config
from modelyard.errors import ConfigError

# The minimal form from the gateway-core issue must keep working.
MINIMAL = """
providers:
  openai:     {kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY}
  anthropic:  {kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_API_KEY}
  gemini:     {kind: gemini, base_url: "https://generativelanguage.googleapis.com", api_key_env: GEMINI_API_KEY}
  gpu-pool:   {kind: openai_compatible, base_url: "http://10.0.0.5:8000/v1"}
models:
  gpt-4o-mini:  {provider: openai}
  claude-haiku: {provider: anthropic, upstream_model: claude-haiku-4-5}
  llama-8b:     {provider: gpu-pool, upstream_model: meta-llama/Llama-3.1-8B-Instruct}
workloads:
  support-triage: {data_class: confidential, model: gpt-4o-mini}
ledger: {url: "sqlite:///modelyard.db"}
"""


def test_the_minimal_form_loads_and_resolves_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "modelyard.yaml"
    path.parent.mkdir()
    path.write_text(MINIMAL)
    config = load_config(path)
    assert config.upstream_model("claude-haiku") == "claude-haiku-4-5"
    assert config.upstream_model("gpt-4o-mini") == "gpt-4o-mini"
    assert config.providers["gpu-pool"].resolved_hosting == "self_hosted"
    assert config.providers["openai"].resolved_hosting == "external"
    assert config.ledger.url == f"sqlite:///{tmp_path / 'conf' / 'modelyard.db'}", "relative to the file"
    assert config.policy.data_classes["restricted"].allow == ("self_hosted",), "safe default"


BASE = {
    "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}},
    "models": {"m": {"provider": "p"}},
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"providers": {"p": {"kind": "openai", "base_url": "http://x/v1", "api_kye_env": "K"}}},
            "providers.p.api_kye_env: unknown key",
        ),
        (
            {"providers": {"p": {"kind": "bedrock", "base_url": "http://x"}}},
            "'openai', 'anthropic', 'gemini', 'openai_compatible', 'cohere', 'jina', 'voyage' or 'local'",
        ),
        ({"providers": {"p": {"kind": "openai"}}}, "base_url is required for kind 'openai'"),
        ({"providers": {"p": {"kind": "openai", "base_url": "ftp://x"}}}, "providers.p.base_url"),
        (
            {"providers": {"p": {"kind": "openai", "base_url": "http://x", "api_key_env": "sk-live-123"}}},
            "providers.p.api_key_env",
        ),
        ({"models": {"m": {"provider": "nope"}}}, "models.m.provider: unknown provider 'nope'; allowed: p"),
        ({"workloads": {"w": {"model": "zz"}}}, "workloads.w.model: unknown model or route 'zz'; allowed: m"),
        (
            {"workloads": {"w": {"data_class": "secret"}}},
            "'public', 'internal', 'confidential' or 'restricted'",
        ),
        ({"server": {"default_workload": "w"}}, "server.default_workload: unknown workload 'w'"),
        ({"routes": {"r": {"strategy": "cascade", "targets": [{"model": "m"}]}}}, "needs validators"),
        ({"routes": {"r": {"targets": [{"model": "q"}]}}}, "routes.r.targets[0].model: unknown model 'q'"),
        (
            {"policy": {"data_classes": {"restricted": {"allow": ["moon"]}}}},
            "policy.data_classes.restricted.allow: unknown entry 'moon'; allowed: any, self_hosted, external, p",
        ),
        ({"ledger": {"url": "mysql://x"}}, "ledger.url"),
        ({"telemetry": True}, "telemetry: unknown key"),
    ],
)
def test_errors_name_the_path_and_the_allowed_values(change: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**BASE, **change})
    assert expected in str(raised.value)


def test_check_command_reports_problems_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("providers: {p: {kind: openai, base_url: 'http://x/v1'}}\nmodels: {m: {provider: q}}\n")
    result = CliRunner().invoke(cli, ["check", "--config", str(path)])
    assert result.exit_code == 1
    assert "models.m.provider: unknown provider 'q'" in result.output and "Traceback" not in result.output
    path.write_text(MINIMAL)
    result = CliRunner().invoke(cli, ["check", "--config", str(path)])
    assert result.exit_code == 0 and "model llama-8b -> gpu-pool" in result.output
    assert "environment variable OPENAI_API_KEY is not set" in result.stderr


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
    path.write_text("providers: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
