"""Imports on exports shaped like the real thing: LiteLLM spend logs, OpenAI usage, JSONL of calls.

Per-workload counts, tokens and spend are held to an independent SQL sum (sqlite3's JSON functions) over the
same rows; untagged rows, LiteLLM's automatic User-Agent tags, cached tokens in ``metadata``, lower-case
headers, multi-line quoted JSON and missing columns are each exercised.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from modelyard.cli.decide import decide_command
from modelyard.economics.aggregate import Traffic
from modelyard.economics.litellm_spend import missing_columns, resolve_columns
from modelyard.economics.org import load_org
from modelyard.economics.traffic import read_traffic
from modelyard.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "imports"
EXAMPLES = Path(__file__).parent.parent / "examples"
LITELLM = FIXTURES / "litellm_spend_logs.csv"

#: The reference: the workload of a row, in SQL, written without our reader's code. First request tag that is
#: neither blank nor LiteLLM's automatic User-Agent tag, else 'untagged'; non-chat calls left out.
REFERENCE_SQL = """
    SELECT COALESCE((SELECT value FROM json_each(CASE WHEN json_valid(request_tags) THEN request_tags ELSE '[]' END)
                     WHERE lower(value) NOT LIKE 'user-agent:%' AND trim(value) <> '' ORDER BY key LIMIT 1),
                    'untagged') AS workload,
           count(*), sum(prompt_tokens), sum(completion_tokens),
           sum(CAST(round(spend * 1e12) AS INTEGER)),
           sum(min(prompt_tokens, COALESCE(
               json_extract(CASE WHEN json_valid(metadata) THEN metadata END, '$.usage_object.prompt_tokens_details.cached_tokens'),
               json_extract(CASE WHEN json_valid(metadata) THEN metadata END, '$.usage_object.cache_read_input_tokens'),
               0)))
    FROM logs WHERE call_type NOT LIKE '%embedding%'
    GROUP BY 1"""  # fmt: skip


def reference(path: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """Per workload: requests, input, output, spend in pico-USD, cached input: summed by SQLite."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [{k.lower(): v for k, v in r.items()} for r in reader]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE logs (call_type TEXT, request_tags TEXT, metadata TEXT, prompt_tokens INTEGER, "
               "completion_tokens INTEGER, spend REAL)")  # fmt: skip
    values = [
        (r["call_type"], r["request_tags"], r["metadata"], int(r["prompt_tokens"]), int(r["completion_tokens"]),
         float(r["spend"])) for r in rows
    ]  # fmt: skip
    db.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?)", values)
    return {w: (n, i, o, s, c) for w, n, i, o, s, c in db.execute(REFERENCE_SQL)}


def per_workload(traffic: Traffic) -> dict[str, tuple[int, int, int, int, int]]:
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for h in traffic.hours:
        a = acc[h.workload]
        for j, v in enumerate(
            (h.requests, h.input_tokens, h.output_tokens, h.cost_pico_usd, h.cached_input_tokens)
        ):
            a[j] += v
    return {w: (a[0], a[1], a[2], a[3], a[4]) for w, a in acc.items()}


def rewrite(src: Path, dst: Path, header: list[str] | None = None, drop: tuple[str, ...] = ()) -> Path:
    """The same export with another header (e.g. lower-case) or without some columns, quoted as Postgres does."""
    with src.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    keep = [j for j, name in enumerate(rows[0]) if name not in drop]
    rows[0] = header or rows[0]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[r[j] for j in keep] for r in rows])
    dst.write_text(out.getvalue(), encoding="utf-8")
    return dst


def test_litellm_export_per_workload_equals_a_sql_sum() -> None:
    traffic = read_traffic(str(LITELLM))
    assert per_workload(traffic) == reference(LITELLM)
    assert set(per_workload(traffic)) == {"support-bot", "contracts", "untagged"}


def test_untagged_and_user_agent_only_rows_go_to_the_default_workload_and_are_reported() -> None:
    traffic = read_traffic(str(LITELLM))
    untagged = per_workload(traffic)["untagged"]
    assert untagged[0] == 3  # "[]", an empty field, and only "User-Agent: curl…" tags
    assert not any(w.lower().startswith("user-agent") for w in per_workload(traffic))
    assert traffic.notes[0].startswith("3 of 8 requests had no request tag")
    assert "workload 'untagged'" in traffic.notes[0] and "untagged" in traffic.source
    assert "1 call(s) that are not chat" in traffic.notes[1]


def test_cached_prompt_tokens_come_from_metadata() -> None:
    work = per_workload(read_traffic(str(LITELLM)))
    assert work["support-bot"][4] == 1024 + 1792  # usage_object.prompt_tokens_details.cached_tokens
    assert work["contracts"][4] == 3500  # Anthropic: also cache_read_input_tokens


def test_naive_timestamps_are_utc_and_ttft_is_read() -> None:
    traffic = read_traffic(str(LITELLM))
    first = min(h.hour for h in traffic.hours)
    assert first == int(datetime(2026, 10, 1, 9, tzinfo=UTC).timestamp())
    assert any(h.ttft_bucket is not None for h in traffic.histogram)


def test_lower_case_headers_read_the_same(tmp_path: Path) -> None:
    with LITELLM.open(encoding="utf-8") as f:
        header = next(csv.reader(f))
    lower = rewrite(LITELLM, tmp_path / "lower.csv", header=[h.lower() for h in header])
    assert per_workload(read_traffic(str(lower))) == per_workload(read_traffic(str(LITELLM)))


def test_every_missing_column_is_named_once_with_the_columns_found(tmp_path: Path) -> None:
    trimmed = rewrite(LITELLM, tmp_path / "trimmed.csv", drop=("spend", "prompt_tokens", "endTime"))
    with pytest.raises(ConfigError) as err:
        read_traffic(str(trimmed))
    message = str(err.value)
    assert "missing column(s) endTime, prompt_tokens, spend" in message
    assert "found: request_id, call_type, api_key, total_tokens" in message
    assert "Binder" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("found", "workload_from", "missing"),
    [
        (["startTime", "endTime", "model", "prompt_tokens", "completion_tokens", "spend"], "request_tag", []),
        (["starttime", "endtime", "MODEL", "prompt_tokens", "completion_tokens", "spend"], "request_tag", []),
        (["start_time", "end_time", "model", "prompt_tokens", "completion_tokens", "spend"], "team_id", ["team_id"]),
        (["startTime", "model", "spend"], "request_tag", ["endTime", "prompt_tokens", "completion_tokens"]),
        (["startTime", "endTime", "model", "prompt_tokens", "completion_tokens", "spend"], "metadata.k", ["metadata"]),
    ],
)  # fmt: skip
def test_missing_columns_from_a_table(found: list[str], workload_from: str, missing: list[str]) -> None:
    assert missing_columns(resolve_columns(found), workload_from) == missing


@pytest.mark.parametrize(
    ("workload_from", "expected"),
    [
        ("team_id", {"team-support", "team-legal", "untagged"}),
        ("metadata.user_api_key_alias", {"support-key", "legal-key", "untagged"}),
        ("user", {"contracts-svc", "untagged"}),
        ("session_id", {"sess-77", "untagged"}),  # any column of the export
        ("model", {"gpt-4o-mini", "claude-sonnet-4-5-20250929"}),
    ],
)
def test_workload_from_any_column(workload_from: str, expected: set[str]) -> None:
    traffic = read_traffic(str(LITELLM), workload_from=workload_from)
    assert set(per_workload(traffic)) == expected


def test_workload_from_an_unknown_column_lists_the_choices() -> None:
    with pytest.raises(
        ConfigError,
        match=r"workload from 'nope' \(decide --workload-from or traffic.litellm_workload_from\): "
        r"the file has no such column; use request_tag.*found: request_id",
    ):
        read_traffic(str(LITELLM), workload_from="nope")


def _org_with_workload_from(tmp_path: Path, value: str) -> Path:
    org = yaml.safe_load((EXAMPLES / "org.yaml").read_text(encoding="utf-8"))
    org.setdefault("traffic", {})["litellm_workload_from"] = value
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(org), encoding="utf-8")
    return path


@pytest.mark.parametrize(("value", "expected"), [
    ("session_id", {"sess-77", "untagged"}),  # a column outside the old fixed list
    ("metadata.user_api_key_alias", {"support-key", "legal-key", "untagged"}),
])  # fmt: skip
def test_org_profile_workload_from_takes_what_the_cli_flag_takes(
    tmp_path: Path, value: str, expected: set[str]
) -> None:
    org = load_org(_org_with_workload_from(tmp_path, value))
    traffic = read_traffic(str(LITELLM), litellm_workload_from=org.traffic.litellm_workload_from)
    assert set(per_workload(traffic)) == expected


def test_org_profile_workload_from_an_unknown_column_names_the_columns_found(tmp_path: Path) -> None:
    org = _org_with_workload_from(tmp_path, "cost_centre")
    args = ["--org", str(org), "--traffic", str(LITELLM), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(decide_command, args)
    assert result.exit_code == 2, result.output
    assert "workload from 'cost_centre'" in result.output and "traffic.litellm_workload_from" in result.output
    assert "found: request_id, call_type" in result.output and "Traceback" not in result.output


def generated_export(path: Path, n: int, seed: int) -> Path:
    """A larger export with random tags (some empty, some automatic), metadata shapes and quoting."""
    rng = random.Random(seed)
    header = ["request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
              "startTime", "endTime", "completionStartTime", "model", "model_group", "custom_llm_provider", "user",
              "metadata", "cache_hit", "request_tags", "team_id", "status", "messages"]  # fmt: skip
    t0 = datetime(2026, 9, 1, tzinfo=UTC)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for k in range(n):
        tags = rng.choice([[], ["a"], ["b", "User-Agent: x"], ["User-Agent: curl"], ["", "c"], ["c", "a"]])
        cached = rng.choice([None, 0, rng.randint(0, 500)])
        meta: dict[str, object] = {}
        if cached is not None:
            meta = {"usage_object": {"prompt_tokens_details": {"cached_tokens": cached}}}
        if cached is not None and rng.random() < 0.3:
            meta = {"usage_object": {"cache_read_input_tokens": cached}}
        start = t0 + timedelta(seconds=rng.randint(0, 20 * 86400), milliseconds=rng.randint(0, 999))
        end = start + timedelta(milliseconds=rng.randint(100, 9000))
        i, o = rng.randint(1, 4000), rng.randint(0, 800)
        w.writerow([f"r{k}", rng.choice(["acompletion", "completion", "aembedding"]), "k", f"{rng.random() / 100:.9f}",
                    i + o, i, o, start.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], end.isoformat(), "", "m", "m", "openai",
                    "", json.dumps(meta), "False", "" if tags == [] and rng.random() < 0.5 else json.dumps(tags),
                    "", rng.choice(["success", "failure"]), '{"messages": "line one,\nline \\"two\\""}'])  # fmt: skip
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def test_a_generated_export_equals_the_sql_sum(tmp_path: Path) -> None:
    path = generated_export(tmp_path / "big.csv", 3000, seed=16)
    assert per_workload(read_traffic(str(path))) == reference(path)


# --- OpenAI usage -------------------------------------------------------------------------------------------


def test_openai_usage_grouped_by_model_only_goes_to_the_default_workload(tmp_path: Path) -> None:
    traffic = read_traffic(str(FIXTURES / "openai_usage_completions.json"), default_workload="all-openai")
    work = per_workload(traffic)
    assert set(work) == {"all-openai", "proj_support"}
    assert work["all-openai"][:3] == (120 + 30, 96_000 + 45_000, 9_600 + 3_000)
    assert traffic.notes == (
        "150 of 162 requests had no project (export with group_by=project_id): counted as workload 'all-openai'",
    )


def test_openai_usage_csv_headers_without_case_and_missing_columns_named(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("Start_Time,End_Time,Project_Name,Model,Num_Model_Requests,Input_Tokens,Output_Tokens\n"
                    "2026-10-01T00:00:00Z,2026-10-01T01:00:00Z,Support,gpt-4o-mini,10,1000,100\n")  # fmt: skip
    assert per_workload(read_traffic(str(path)))["Support"][:3] == (10, 1000, 100)
    path.write_text("date,model,num_model_requests\n2026-10-01,gpt-4o-mini,3\n")
    with pytest.raises(
        ConfigError, match=r"missing column\(s\) input_tokens, output_tokens .*found: date, model"
    ):
        read_traffic(str(path))


def test_workload_from_a_litellm_column_on_openai_usage_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"names its workload by project, api_key, user, model"):
        read_traffic(str(FIXTURES / "openai_usage_completions.json"), workload_from="team_id")


# --- JSONL --------------------------------------------------------------------------------------------------


def test_jsonl_lines_without_workload_go_to_the_default_workload(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    lines = [{"ts": 1790845200 + k, "model": "m", "input_tokens": 10, "output_tokens": 2, "latency_ms": 100.0}
             for k in range(3)]  # fmt: skip
    lines[0]["workload"] = "chat"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    traffic = read_traffic(str(path))
    assert {w: v[0] for w, v in per_workload(traffic).items()} == {"chat": 1, "untagged": 2}
    assert traffic.notes == ("2 of 3 lines name no workload: counted as workload 'untagged'",)


def test_jsonl_of_another_shape_names_every_missing_field_and_those_found(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"time": 1, "model": "m", "prompt": 3, "completion": 1}) + "\n")
    with pytest.raises(ConfigError) as err:
        read_traffic(str(path))
    assert "field(s) ts, input_tokens, output_tokens, latency_ms missing from every line" in str(err.value)
    assert "found: time, model, prompt, completion" in str(err.value)


def test_workload_from_on_a_source_that_names_workloads_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--workload-from applies to LiteLLM spend logs and OpenAI usage"):
        read_traffic(str(tmp_path / "calls.jsonl"), workload_from="team_id")


# --- the CLI ------------------------------------------------------------------------------------------------


def test_decide_cli_takes_workload_from_and_default_workload(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--traffic", str(LITELLM), "--workload-from", "metadata.user_api_key_alias", "--default-workload",
            "no-key-alias", "--out", str(out), "--today", date(2026, 10, 20).isoformat()]  # fmt: skip
    result = CliRunner().invoke(decide_command, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "decision.json").read_text())
    assert {w["name"] for w in doc["workloads"]} == {"support-key", "legal-key", "no-key-alias"}
    assert "counted as workload 'no-key-alias'" in doc["traffic_source"]


def test_decide_cli_reports_a_missing_column_in_one_line(tmp_path: Path) -> None:
    trimmed = rewrite(LITELLM, tmp_path / "t.csv", drop=("spend",))
    result = CliRunner().invoke(decide_command, ["--traffic", str(trimmed), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "missing column(s) spend" in result.output and "Traceback" not in result.output


def test_openai_daily_bucket_with_fewer_requests_than_hours_keeps_every_token(tmp_path: Path) -> None:
    # A daily bucket of 5 requests used to be split over 24 hours, and the 19 hours without a request took
    # their share of tokens with them.
    path = tmp_path / "usage.csv"
    path.write_text(
        "date,project_id,model,num_model_requests,input_tokens,output_tokens\n"
        "2026-11-02,proj_a,gpt-4o-mini,5,12345,678\n",
        encoding="utf-8",
    )
    hours = read_traffic(str(path)).hours
    assert sum(h.requests for h in hours) == 5
    assert (sum(h.input_tokens for h in hours), sum(h.output_tokens for h in hours)) == (12345, 678)
