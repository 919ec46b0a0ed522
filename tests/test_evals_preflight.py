"""Pre-flight (issue 21 item 3): a run that cannot finish, or would grade with a broken check, is refused
before its first paid call, with every problem at once; ``eval validate`` finds the same problems."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from modelyard.cli.eval import eval_command
from modelyard.config import load_config
from modelyard.config.schema import Config
from modelyard.evals.cache import ResultCache
from modelyard.evals.golden import Check, GoldenCase, GoldenSet, load_golden_set
from modelyard.evals.preflight import preflight
from modelyard.evals.runner import EvalSetupError, RunOptions, run_eval
from tests.fakes.common import serve_app
from tests.fakes.scripted_openai import ScriptedState, create_app, write_eval_config


def one_case(check: dict[str, Any], expected: str | None = "Paris") -> GoldenSet:
    kind, params = check["type"], {k: v for k, v in check.items() if k != "type"}
    case = GoldenCase("c1", [{"role": "user", "content": "q"}], expected, checks=(Check(kind, params),))
    return GoldenSet("s", (case,))


PROBLEMS: list[tuple[dict[str, Any], str | None, str]] = [
    ({"type": "similarity", "threshold": 1.5}, "Paris", "'threshold' must be a number from 0 to 1, got 1.5"),
    ({"type": "similarity", "threshold": -0.2}, "Paris", "'threshold' must be a number from 0 to 1"),
    ({"type": "similarity"}, None, "needs 'expected' in the case or 'value' in the check"),
    (
        {"type": "judge", "rubric": "x", "threshold": 7},
        None,
        "'threshold' must be a number from 0 to 1, got 7",
    ),
    ({"type": "judge", "rubric": "x", "threshold": True}, None, "'threshold' must be a number from 0 to 1"),
    ({"type": "judge"}, None, "judge needs 'rubric'"),
    ({"type": "judge", "rubric": "x", "model": 5}, None, "'model' must be str"),
    ({"type": "numeric", "tolerance": -1}, "4", "'tolerance' and 'relative' must be >= 0"),
    ({"type": "regex", "pattern": "("}, None, "'pattern' is not a valid regular expression"),
    ({"type": "exact"}, None, "needs 'expected' in the case or a value in the check"),
    ({"type": "json_schema"}, None, "needs 'schema' in the case or in the check"),
    ({"type": "bleu"}, "x", "unknown check type 'bleu'"),
]


@pytest.mark.parametrize(("check", "expected", "message"), PROBLEMS)
def test_each_bad_check_is_found_before_any_call(
    check: dict[str, Any], expected: str | None, message: str
) -> None:
    problems = preflight(one_case(check, expected), judge_model="judge")
    assert len(problems) == 1 and message in problems[0] and "case 'c1'" in problems[0]


def test_sound_checks_pass() -> None:
    for check in ({"type": "judge", "rubric": "x", "threshold": 0}, {"type": "exact"}, {"type": "contains"}):
        assert preflight(one_case(check), judge_model="judge") == []


def test_one_problem_in_many_cases_is_listed_once_with_every_other_problem() -> None:
    bad = Check("similarity", {"threshold": 1.5})
    cases = [GoldenCase(f"t{i}", [{"role": "user", "content": "q"}], "a", checks=(bad,)) for i in range(200)]
    cases.append(GoldenCase("j", [{"role": "user", "content": "q"}], None, checks=(Check("judge", {}),)))
    problems = preflight(GoldenSet("s", tuple(cases)), judge_model=None)
    threshold = [p for p in problems if "threshold" in p]
    assert threshold == [
        "cases 't0', 't1', 't2' and 197 more, check 'similarity': "
        "'threshold' must be a number from 0 to 1, got 1.5"
    ]
    assert any("case 'j', check 'judge': judge needs 'rubric'" in p for p in problems)
    assert any("case 'j': a judge check needs 'model' or the run's --judge" in p for p in problems)


def test_similarity_without_the_embedding_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module set to None in sys.modules cannot be imported: the embeddings extra is "not installed".
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    problems = preflight(one_case({"type": "similarity"}), judge_model=None)
    assert len(problems) == 1
    assert "sentence_transformers not importable" in problems[0] and "'embeddings' extra" in problems[0]
    assert preflight(one_case({"type": "exact"}), judge_model=None) == []  # only when similarity is used


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedState, Config]]:
    state = ScriptedState(answers={"q": "Paris"})
    async with serve_app(create_app(state)) as url:
        yield state, load_config(write_eval_config(tmp_path, url))


async def test_a_run_that_would_fail_mid_way_spends_nothing(
    scripted: tuple[ScriptedState, Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, config = scripted
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    cases = [
        GoldenCase("a", [{"role": "user", "content": "q"}], "Paris", checks=(Check("exact"),)),
        GoldenCase("b", [{"role": "user", "content": "q"}], "Paris", checks=(Check("similarity"),)),
        GoldenCase("c", [{"role": "user", "content": "q"}], None, checks=(Check("judge", {"rubric": "r"}),)),
    ]
    cache = ResultCache(tmp_path / "cache.db")
    with pytest.raises(EvalSetupError) as raised:
        await run_eval(
            config, GoldenSet("s", tuple(cases)), ["good", "gpt-9"], cache, RunOptions(judge_model="nope")
        )
    cache.close()
    message = str(raised.value)
    assert message.startswith("3 problem(s) to fix before any model is called")
    assert "embedding model" in message and "unknown model 'gpt-9' (candidate)" in message
    assert "unknown model 'nope' (judge model)" in message
    assert state.received == []


def write_set(folder: Path, cases: list[dict[str, Any]]) -> Path:
    path = folder / "set.jsonl"
    path.write_text("".join(orjson.dumps(c).decode() + "\n" for c in cases), encoding="utf-8")
    return path


def test_validate_finds_what_run_would_refuse(tmp_path: Path) -> None:
    golden = write_set(
        tmp_path,
        [
            {"id": "a", "messages": [{"role": "user", "content": "q"}], "expected": "x",
             "checks": [{"type": "similarity", "threshold": 1.5}]},
            {"id": "b", "messages": [{"role": "user", "content": "q"}],
             "checks": [{"type": "judge", "rubric": "r", "threshold": 7}]},
        ],
    )  # fmt: skip
    result = CliRunner().invoke(eval_command, ["validate", str(golden)])
    assert result.exit_code == 1
    assert "2 problem(s)" in result.output and "got 1.5" in result.output and "got 7" in result.output
    assert load_golden_set(golden).cases  # the file itself is well formed: only pre-flight refuses it


def test_validate_with_a_config_checks_the_judge_is_routable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELYARD_TEST_JUDGE_KEY", raising=False)
    config = tmp_path / "modelyard.yaml"
    config.write_text(
        "providers:\n"
        "  vendor: {kind: openai, base_url: 'https://api.openai.com/v1', api_key_env: MODELYARD_TEST_JUDGE_KEY}\n"
        "  local: {kind: local}\n"
        "models:\n"
        "  grader: {provider: vendor, upstream_model: gpt-4.1}\n"
        "  minilm: {provider: local, upstream_model: all-MiniLM-L6-v2, kind: embedding}\n",
        encoding="utf-8",
    )
    golden = write_set(
        tmp_path,
        [
            {
                "id": "b",
                "messages": [{"role": "user", "content": "q"}],
                "checks": [{"type": "judge", "rubric": "r"}],
            }
        ],
    )
    unset = CliRunner().invoke(
        eval_command, ["validate", str(golden), "-c", str(config), "--judge", "grader"]
    )
    assert unset.exit_code == 1 and "$MODELYARD_TEST_JUDGE_KEY, which is not set" in unset.output
    embedding = CliRunner().invoke(
        eval_command, ["validate", str(golden), "-c", str(config), "--judge", "minilm"]
    )
    assert "judge model 'minilm' is an embedding model" in embedding.output
    unnamed = CliRunner().invoke(eval_command, ["validate", str(golden), "-c", str(config)])
    assert "needs 'model' or the run's --judge" in unnamed.output
    monkeypatch.setenv("MODELYARD_TEST_JUDGE_KEY", "sk-test")
    ok = CliRunner().invoke(eval_command, ["validate", str(golden), "-c", str(config), "--judge", "grader"])
    assert ok.exit_code == 0 and "set: 1 cases; checks: judge" in ok.output
