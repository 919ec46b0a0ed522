"""``modelyard eval`` through click's CliRunner, against the scripted fake running in its own thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from modelyard.cli.eval import eval_command
from tests.fakes.scripted_openai import FIXTURES, ScriptedState, serving_in_thread, write_eval_config


@pytest.fixture
def fake_url() -> Iterator[str]:
    """The CLI runs its own event loop, so the fake gets another one, in a thread."""
    state = ScriptedState(answers=orjson.loads((FIXTURES / "answers.json").read_bytes()))
    with serving_in_thread(state) as url:
        yield url


def test_run_writes_record_and_page_and_gates(tmp_path: Path, fake_url: str) -> None:
    config = write_eval_config(tmp_path, fake_url)
    out = tmp_path / "evals"
    args = ["run", str(FIXTURES / "small.jsonl"), "-c", str(config), "-m", "badjson", "--baseline", "good",
            "--judge", "judge", "--margin", "0.01", "--out", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(eval_command, args)
    # badjson fails both JSON cases the baseline passes: 8 cases cannot show δ=0.01 non-inferiority.
    assert result.exit_code in (1, 3), result.output
    assert "badjson" in result.output and "McNemar b=2 c=0" in result.output
    record = orjson.loads((out / "small" / "latest.json").read_bytes())
    assert list(record["candidates"]) == ["good", "badjson"]
    assert record["gates"][0]["exit_code"] == result.exit_code
    assert list((out / "small").glob("*.html"))
    # A second run is served from the cache: no model call.
    again = CliRunner().invoke(eval_command, args)
    assert "0 model calls, 16 answers from the cache" in again.output

    gate = CliRunner().invoke(
        eval_command,
        ["gate", str(out / "small" / "latest.json"), "--baseline", "good", "--candidate", "good"],
    )
    assert gate.exit_code == 0 and "good is non-inferior to good" in gate.output


def test_run_with_an_unknown_model_spends_nothing(tmp_path: Path, fake_url: str) -> None:
    config = write_eval_config(tmp_path, fake_url)
    args = ["run", str(FIXTURES / "small.jsonl"), "-c", str(config), "-m", "gpt-9", "--judge", "judge",
            "--out", str(tmp_path / "evals"), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(eval_command, args)
    assert result.exit_code == 1
    assert "unknown model 'gpt-9'" in result.output
    assert not (tmp_path / "evals" / "small").exists()


def test_validate_reports_line_numbers() -> None:
    good = CliRunner().invoke(eval_command, ["validate", str(FIXTURES / "small.jsonl")])
    assert good.exit_code == 0
    assert "small: 8 cases; checks: contains, exact, json_schema, judge, numeric, regex" in good.output
    bad = CliRunner().invoke(eval_command, ["validate", str(FIXTURES / "bad.jsonl")])
    assert bad.exit_code == 1 and "bad.jsonl:3: not valid JSON" in bad.output


def test_import_openai_evals(tmp_path: Path) -> None:
    out = tmp_path / "set.jsonl"
    result = CliRunner().invoke(
        eval_command, ["import-openai-evals", str(FIXTURES / "openai_evals_samples.jsonl"), "-o", str(out)]
    )
    assert result.exit_code == 0 and "wrote 2 cases" in result.output
    check = CliRunner().invoke(eval_command, ["validate", str(out)])
    assert "set: 2 cases; checks: exact" in check.output
