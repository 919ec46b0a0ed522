"""More traffic sources: the ledger's own exports, SQLite read in parallel, OpenAI usage; and their errors."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelyard.cli.decide import decide_command
from modelyard.economics.org import load_org
from modelyard.economics.traffic import read_ledger, read_traffic
from modelyard.economics.workload import build_profiles
from modelyard.errors import ConfigError
from modelyard.ledger.export import export_requests
from modelyard.ledger.schema import RequestRow
from tests.test_economics_inputs import CALLS, H0, ROOT, write_ledger

ORG = load_org(ROOT / "examples/org.yaml")


def ledger_rows() -> list[RequestRow]:
    return [
        RequestRow(request_id=f"r{n}", ts=H0 + off + 0.5, endpoint="chat", workload=wl, data_class=dc,
                   tenant=None, api_key_id=None, model=model, provider=prov, provider_kind=prov,
                   upstream_model=model, status=status, error_kind=None, streamed=False, input_tokens=i,
                   output_tokens=o, latency_ms=lat, cost_pico_usd=10**9)
        for n, (off, wl, model, prov, i, o, lat, status, dc) in enumerate(CALLS)
    ]  # fmt: skip


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_ledger_export_gives_the_ledger_profile(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"export.{fmt}"
    export_requests(ledger_rows(), path, fmt)  # type: ignore[arg-type]
    exported = {p.name: p for p in build_profiles(read_traffic(str(path)), ORG)}
    direct = {p.name: p for p in build_profiles(read_traffic(write_ledger(tmp_path / "l.db")), ORG)}
    chat = exported["chat"]
    assert (chat.requests, chat.input_tokens_mean, chat.output_tokens_mean) == (3, 2000, 300)
    assert chat.error_rate == pytest.approx(1 / 3)
    assert chat.latency_ms == direct["chat"].latency_ms
    assert exported["legal"].restricted_external == 1
    assert chat.models[0].cost_usd == Decimal("0.003") and direct["chat"].models[0].cost_usd == 0


def test_parquet_without_ledger_columns_names_them(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"ts": [1.0], "model": ["m"]}), tmp_path / "other.parquet")
    with pytest.raises(ConfigError, match=r"other.parquet: column\(s\) endpoint, workload.*ledger export"):
        read_traffic(str(tmp_path / "other.parquet"))


def test_sqlite_split_over_threads_adds_up_to_one_scan(tmp_path: Path) -> None:
    url = write_ledger(tmp_path / "l.db")
    whole = read_ledger(url, workers=1)
    split = read_ledger(url, workers=3, rows_per_worker=1)
    assert sorted(split.hours, key=repr) == sorted(whole.hours, key=repr)
    assert sorted(split.histogram, key=repr) == sorted(whole.histogram, key=repr)


def usage_page() -> dict[str, object]:
    def result(project: str, model: str, n: int, i: int, c: int, o: int) -> dict[str, object]:
        return {"object": "organization.usage.completions.result", "input_tokens": i, "output_tokens": o,
                "input_cached_tokens": c, "num_model_requests": n, "project_id": project, "user_id": None,
                "api_key_id": None, "model": model, "batch": None}  # fmt: skip

    return {"object": "page", "has_more": False, "next_page": None, "data": [
        {"object": "bucket", "start_time": H0, "end_time": H0 + 3600,
         "results": [result("proj_a", "gpt-4o-mini", 4, 4000, 1000, 800), result("proj_b", "gpt-4o", 1, 50, 0, 5)]},
        {"object": "bucket", "start_time": H0 + 86400, "end_time": H0 + 2 * 86400,
         "results": [result("proj_a", "gpt-4o-mini", 50, 50_000, 0, 10_000)]},
    ]}  # fmt: skip


def test_openai_usage_api_json_maps_projects_to_workloads(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(usage_page()))
    traffic = read_traffic(str(path), openai_names={"proj_a": "support-chat"})
    profiles = {p.name: p for p in build_profiles(traffic, ORG)}
    assert set(profiles) == {"support-chat", "proj_b"}
    chat = profiles["support-chat"]
    assert chat.requests == 54
    assert chat.input_tokens_mean * 54 == 54_000 and chat.cached_input_tokens_mean * 54 == 1000
    # The daily bucket's 50 requests are spread over its 24 hours (3 or 2 an hour), the hourly one is not.
    assert chat.peak_rps == pytest.approx(4 / 3600)
    assert chat.latency_ms == {} and chat.models[0].provider_kind == "openai"


def test_openai_usage_csv_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("date,project_name,model,num_model_requests,input_tokens,output_tokens\n"
                    "2026-10-01,Support bot,gpt-4o-mini,48,48000,4800\n")  # fmt: skip
    (chat,) = build_profiles(read_traffic(str(path), openai_names={"Support bot": "support-chat"}), ORG)
    assert (chat.name, chat.requests, chat.output_tokens_mean) == ("support-chat", 48, 100)
    path.write_text("date,project_name,model,num_model_requests,input_tokens,output_tokens\n"
                    "2026-10-01,Support bot,gpt-4o-mini,48,lots,4800\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"usage.csv: line 2: field 'input_tokens' is not a whole number"):
        read_traffic(str(path))
    page = usage_page()
    page["data"][1]["results"][0]["model"] = None  # type: ignore[index]
    (tmp_path / "u.json").write_text(json.dumps(page))
    with pytest.raises(
        ConfigError, match=r"page 1, bucket 2, result 1: no 'model': export the usage with group_by"
    ):
        read_traffic(str(tmp_path / "u.json"))


def test_decide_reads_a_parquet_ledger_export(tmp_path: Path) -> None:
    export_requests(ledger_rows() * 1, tmp_path / "ledger.parquet", "parquet")
    out = tmp_path / "out"
    result = CliRunner().invoke(decide_command, ["--traffic", str(tmp_path / "ledger.parquet"), "--out", str(out),
                                                 "--today", date(2026, 11, 23).isoformat()])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "decision.json").read_text())
    assert doc["traffic_source"].endswith("ledger.parquet")
    assert {w["name"] for w in doc["workloads"]} == {"chat", "legal"}
