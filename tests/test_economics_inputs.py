"""Inputs: every traffic source gives the same profile; bad input names the line or field and the fix."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from modelyard.economics.engine import decide, load_catalogs
from modelyard.economics.org import load_org
from modelyard.economics.traffic import read_traffic
from modelyard.economics.workload import build_profiles
from modelyard.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MIGRATION = ROOT / "src/modelyard/ledger/migrations/sqlite/0001_init.sql"
T0 = 1_790_000_000  # an hour boundary: 2026-09-21 14:13:20 UTC is not; use hour-aligned below
H0 = T0 - T0 % 3600

CALLS = [  # (offset s, workload, model, provider, in, out, latency ms, status, data class)
    (10, "chat", "gpt-4o-mini", "openai", 1000, 200, 800.0, 200, "internal"),
    (20, "chat", "gpt-4o-mini", "openai", 3000, 400, 1200.0, 200, "internal"),
    (3700, "chat", "gpt-4o-mini", "openai", 2000, 300, 1000.0, 500, "internal"),
    (3800, "legal", "gpt-4o", "openai", 5000, 500, 5000.0, 200, "restricted"),
]


def write_jsonl(path: Path) -> Path:
    with path.open("w") as f:
        for off, wl, model, prov, i, o, lat, status, dc in CALLS:
            f.write(json.dumps({"ts": H0 + off, "workload": wl, "model": model, "provider": prov, "input_tokens": i,
                                "output_tokens": o, "latency_ms": lat, "status": status, "data_class": dc}) + "\n")  # fmt: skip
    return path


def write_ledger(path: Path) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATION.read_text())
    for n, (off, wl, model, prov, i, o, lat, status, dc) in enumerate(CALLS):
        conn.execute(
            "INSERT INTO requests (request_id, ts, endpoint, workload, data_class, model, provider_kind, status,"
            " streamed, input_tokens, output_tokens, latency_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (f"r{n}", H0 + off + 0.5, "chat", wl, dc, model, prov, status, False, i, o, lat),
        )
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def write_litellm(path: Path) -> Path:
    lines = ["request_id,call_type,api_key,spend,total_tokens,prompt_tokens,completion_tokens,startTime,endTime,"
             "model,model_group,custom_llm_provider,user,metadata,cache_hit,request_tags"]  # fmt: skip
    for n, (off, wl, model, prov, i, o, lat, _status, _dc) in enumerate(CALLS):
        from datetime import UTC, datetime, timedelta

        start = datetime.fromtimestamp(H0 + off, UTC)
        end = start + timedelta(milliseconds=lat)
        lines.append(f'r{n},acompletion,k,0.001,{i + o},{i},{o},{start.isoformat()},{end.isoformat()},{model},'
                     f'{model},{prov},u,{{}},False,"[""{wl}""]"')  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def example_org() -> object:
    return load_org(ROOT / "examples/org.yaml")


@pytest.mark.parametrize("kind", ["jsonl", "ledger", "litellm"])
def test_every_source_gives_the_same_profile(tmp_path: Path, kind: str, example_org: object) -> None:
    spec = {
        "jsonl": lambda: str(write_jsonl(tmp_path / "calls.jsonl")),
        "ledger": lambda: write_ledger(tmp_path / "ledger.db"),
        "litellm": lambda: str(write_litellm(tmp_path / "spend.csv")),
    }[kind]()
    profiles = {p.name: p for p in build_profiles(read_traffic(spec), example_org)}  # type: ignore[arg-type]
    chat = profiles["chat"]
    assert chat.requests == 3
    assert chat.input_tokens_mean == 2000
    assert chat.output_tokens_mean == 300
    assert chat.mean_latency_ms == pytest.approx(1000.0, abs=1.0)
    assert chat.peak_rps == pytest.approx(2 / 3600)
    if kind != "litellm":  # LiteLLM logs carry no data class; a status column is optional
        assert chat.error_rate == pytest.approx(1 / 3)
        assert profiles["legal"].restricted_external == 1


def test_malformed_jsonl_names_the_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "calls.jsonl")
    lines = path.read_text().splitlines()
    lines.insert(2, '{"ts": 1, "workload": "w", oops}')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"line 3"):
        read_traffic(str(path))


def test_missing_field_names_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "calls.jsonl")
    path.write_text(
        path.read_text() + json.dumps({"ts": H0, "workload": "w", "model": "m", "input_tokens": 1}) + "\n"
    )
    with pytest.raises(ConfigError, match=r"line 5: field 'output_tokens'"):
        read_traffic(str(path))


def test_org_unknown_key_and_bad_value_name_the_path(tmp_path: Path) -> None:
    text = (ROOT / "examples/org.yaml").read_text().replace("redundancy: 1", "redundancy: 1\n  redundnacy: 2")
    (tmp_path / "org.yaml").write_text(text.replace("horizon_months: 36", "horizon_months: -1"))
    with pytest.raises(ConfigError) as err:
        load_org(tmp_path / "org.yaml")
    assert "capacity.redundnacy: unknown key" in str(err.value)
    assert "horizon_months:" in str(err.value)


def _org_variant(tmp_path: Path, old: str, new: str) -> object:
    text = (ROOT / "examples/org.yaml").read_text().replace(old, new)
    (tmp_path / "org.yaml").write_text(text)
    (tmp_path / "managed-open-prices.yaml").write_text(
        (ROOT / "examples/managed-open-prices.yaml").read_text()
    )
    return load_org(tmp_path / "org.yaml")


def test_missing_price_says_what_to_do(tmp_path: Path) -> None:
    org = _org_variant(
        tmp_path, "{provider: openai, model: gpt-4.1}", "{provider: openai, model: gpt-9-imaginary}"
    )
    traffic = read_traffic(str(write_jsonl(tmp_path / "calls.jsonl")))
    with pytest.raises(ConfigError, match=r"no price for openai/gpt-9-imaginary.*catalog.price_files"):
        decide(org, traffic, load_catalogs(org), date(2026, 11, 1))  # type: ignore[arg-type]


def test_unknown_gpu_offer_lists_known_ones(tmp_path: Path) -> None:
    org = _org_variant(tmp_path, "offer: aws/L4-24GB", "offer: aws/B200")
    traffic = read_traffic(str(write_jsonl(tmp_path / "calls.jsonl")))
    with pytest.raises(
        ConfigError, match=r"unknown GPU offer 'aws/B200'; known offers: .*lambda/H100-SXM-80GB"
    ):
        decide(org, traffic, load_catalogs(org), date(2026, 11, 1))  # type: ignore[arg-type]


def test_impossible_constraints_name_the_workload(tmp_path: Path) -> None:
    org = _org_variant(tmp_path, "  self_hosted:\n    - {model: Llama", "  self_hosted:\n    - {model: Nope")
    org = _org_variant(
        tmp_path,
        "candidates:\n",
        "data_classes: {restricted: [], internal: [api], public: [api], confidential: []}\ncandidates:\n",
    )
    traffic = read_traffic(str(write_jsonl(tmp_path / "calls.jsonl")))
    with pytest.raises(
        ConfigError, match=r"impossible constraints: no feasible option for workload\(s\) legal"
    ):
        decide(org, traffic, load_catalogs(org), date(2026, 11, 1))  # type: ignore[arg-type]
