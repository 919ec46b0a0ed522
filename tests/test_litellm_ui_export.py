"""The LiteLLM admin UI's usage export (Usage → Export → CSV), told apart from the spend-log table by its header.

The fixtures are written as the UI writes them (``EntityUsageExport/utils.ts`` through ``Papa.unparse``): CRLF
line ends, ``Spend ($)`` with thousands separators and 4 decimals, ``-`` where the UI knows no alias, quoting
only where a field holds a comma. Per-workload counts, tokens and spend are held to an independent SQL sum.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelyard.cli.decide import decide_command
from modelyard.economics.litellm_ui_export import NO_MODEL
from modelyard.economics.traffic import read_traffic
from modelyard.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "imports"
TEAM = FIXTURES / "litellm_ui_team_usage_daily_with_keys.csv"
TAG = FIXTURES / "litellm_ui_tag_usage_daily.csv"


def sql_sum(path: Path, workload_sql: str) -> dict[str, tuple[int, int, int, int, int]]:
    """Per workload: requests, failed, prompt, completion tokens and spend in pico-USD, summed by SQLite."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE usage ({', '.join(f'{quote(name)} TEXT' for name in rows[0])})")
    db.executemany(f"INSERT INTO usage VALUES ({', '.join('?' for _ in rows[0])})", rows[1:])
    query = f"""
        SELECT {workload_sql} AS workload, sum(CAST("Requests" AS INTEGER)),
               sum(CAST("Failed Requests" AS INTEGER)), sum(CAST("Prompt Tokens" AS INTEGER)),
               sum(CAST("Completion Tokens" AS INTEGER)),
               sum(CAST(round(CAST(replace("Spend ($)", ',', '') AS REAL) * 1e12) AS INTEGER))
        FROM usage GROUP BY workload"""
    return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in db.execute(query)}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ours(path: Path, **kwargs: str) -> dict[str, tuple[int, int, int, int, int]]:
    acc: dict[str, list[int]] = {}
    for h in read_traffic(str(path), **kwargs).hours:  # type: ignore[arg-type]
        a = acc.setdefault(h.workload, [0, 0, 0, 0, 0])
        for j, v in enumerate((h.requests, h.errors, h.input_tokens, h.output_tokens, h.cost_pico_usd)):
            a[j] += v
    return {w: (a[0], a[1], a[2], a[3], a[4]) for w, a in acc.items()}


def test_team_export_per_workload_equals_a_sql_sum() -> None:
    expected = sql_sum(TEAM, """COALESCE(NULLIF("Team", '-'), NULLIF("Team ID", '-'), 'untagged')""")
    assert ours(TEAM) == expected
    assert set(expected) == {"Support", "team-4f1c", "Research, EU", "untagged"}


def test_tag_export_names_workloads_by_tag() -> None:
    expected = sql_sum(TAG, """COALESCE(NULLIF("Tag", '-'), 'untagged')""")
    assert ours(TAG) == expected
    assert set(expected) == {"support-bot", "contracts"}


def test_workload_from_any_column_of_the_export() -> None:
    expected = sql_sum(TEAM, """COALESCE(NULLIF("Key Alias", '-'), 'untagged')""")
    assert ours(TEAM, workload_from="key alias") == expected
    assert expected["untagged"][0] == 230 + 17


def test_what_the_export_cannot_say_is_reported_not_guessed() -> None:
    traffic = read_traffic(str(TEAM))
    assert {h.model for h in traffic.hours} == {NO_MODEL}
    assert all(h.latency_ms_sum == 0 and h.cached_input_tokens == 0 for h in traffic.hours)
    assert traffic.notes[0] == "daily rows: latency unknown, each day spread evenly over its 24 hours"
    assert "no Model column" in traffic.notes[1]
    assert traffic.notes[2] == "17 of 84,938 requests had no Team or Team ID: counted as workload 'untagged'"
    assert len({h.hour for h in traffic.hours}) == 48  # two days, every hour


def test_daily_with_models_scope_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "team_usage_daily_with_models_2026-12-03.csv"
    path.write_text(
        "Date,Team,Team ID,Model,Spend ($),Requests,Successful,Failed,Total Tokens\r\n"
        '2026-11-02,Support,team-support,gpt-4o-mini,"1,204.3310",41210,41187,23,63915210',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"'Daily with models' usage export has Total Tokens only"):
        read_traffic(str(path))


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_text("Date,Tag,Spend ($),Requests\r\n2026-11-02,a,1.0,3", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_traffic(str(path))
    assert "missing column(s) Prompt Tokens, Completion Tokens" in str(err.value)
    assert "found: Date, Tag, Spend ($), Requests" in str(err.value)


def test_an_unknown_workload_column_names_the_columns_found() -> None:
    with pytest.raises(
        ConfigError, match=r"workload from 'cost_centre'.*found: Date, Team, Team ID, Key Alias"
    ):
        read_traffic(str(TEAM), workload_from="cost_centre")


def test_decide_runs_on_the_ui_export(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--traffic", str(TEAM), "--out", str(out), "--today", date(2026, 12, 3).isoformat()]
    result = CliRunner().invoke(decide_command, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "decision.json").read_text())
    assert {w["name"] for w in doc["workloads"]} == {"Support", "team-4f1c", "Research, EU", "untagged"}
    assert "LiteLLM UI usage export" in doc["traffic_source"]
