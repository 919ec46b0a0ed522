"""A judge that fails, or answers something that is not a verdict, is an error: counted, reported, never
cached, never a score of 0, and the run exits 4 (issue 21 item 2)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from modelyard.cli.eval import eval_command
from modelyard.config import load_config
from modelyard.config.schema import Config
from modelyard.evals.cache import ResultCache
from modelyard.evals.dispatch import RetryPolicy
from modelyard.evals.golden import GoldenSet, load_golden_set
from modelyard.evals.model_evaluators import parse_judgement
from modelyard.evals.results import gate_run, run_document, summarise
from modelyard.evals.runner import RunOptions, run_eval
from modelyard.evals.stats import JUDGE_ERROR_EXIT, Outcome, run_exit_code
from tests.fakes.common import serve_app
from tests.fakes.scripted_openai import (
    FIXTURES,
    ScriptedState,
    create_app,
    serving_in_thread,
    write_eval_config,
)

#: What broken judges say: a score on the wrong scale, prose, a string, nothing at all.
BROKEN_REPLIES = ['{"score": 7, "reason": "good"}', "9/10", '{"score": "high"}', ""]


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 0.9, "reason": "good"}', 0.9),
        ('Here you go: {"score": 0.3, "reason": "vague"}', 0.3),
        ('{"score": 0}', 0.0),
        ('{"score": 1}', 1.0),
    ],
)
def test_a_readable_verdict_is_a_score(reply: str, score: float) -> None:
    verdict = parse_judgement(reply, threshold=0.5)
    assert verdict.error is None and verdict.score == pytest.approx(score)


@pytest.mark.parametrize(
    "reply",
    [*BROKEN_REPLIES, '{"score": 1.5}', '{"score": -0.1}', '{"score": true}', "I think it is fine", "{"],
)
def test_an_unreadable_verdict_is_an_error_not_a_zero(reply: str) -> None:
    verdict = parse_judgement(reply, threshold=0.5)
    assert verdict.error is not None and verdict.error.startswith("judge reply not understood")


def judged_set(folder: Path, cases: int = 4) -> GoldenSet:
    lines = [
        orjson.dumps(
            {
                "id": f"q{i}",
                "workload": "support",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "expected": "Paris",
                "checks": [{"type": "exact"}, {"type": "judge", "rubric": f"Names Paris ({i})."}],
            }
        ).decode()
        for i in range(cases)
    ]
    path = folder / "judged.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_golden_set(path)


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedState, Config]]:
    state = ScriptedState(answers=orjson.loads((FIXTURES / "answers.json").read_bytes()))
    async with serve_app(create_app(state)) as url:
        yield state, load_config(write_eval_config(tmp_path, url))


def options(judge: str) -> RunOptions:
    return RunOptions(concurrency=2, judge_model=judge, retry=RetryPolicy(retries=1, backoff_s=0.001))


def judge_calls(state: ScriptedState, upstream: str) -> int:
    return sum(1 for model, _ in state.received if model == upstream)


async def test_broken_verdicts_are_errors_never_cached_and_asked_again(
    scripted: tuple[ScriptedState, Config], tmp_path: Path
) -> None:
    state, config = scripted
    state.judge_replies = list(BROKEN_REPLIES)
    golden = judged_set(tmp_path)
    cache = ResultCache(tmp_path / "cache.db")
    run = await run_eval(config, golden, ["good"], cache, options("scripted-judge"))
    assert run.judge_errors == 4
    for result in run.results["good"]:
        assert result.score is None and result.judge_error is not None  # never a 0
        assert "judge reply not understood" in result.judge_error
    summary = summarise("good", run.results["good"])
    assert summary.judge_errors == 4 and summary.quality is None and summary.pass_rate is None
    document = run_document(run, [summary], [])
    assert document["judge_errors"] == 4 and document["quality"] == []  # no score reaches decide
    assert document["candidates"]["good"]["judge_errors"] == 4
    assert all(r["score"] is None and r["judge_error"] for r in document["results"])

    # The answers were cached, the broken verdicts were not: the re-run asks the judge again, no candidate.
    again = await run_eval(config, golden, ["good"], cache, options("scripted-judge"))
    cache.close()
    assert again.calls_made == 0 and again.judge_errors == 0
    assert judge_calls(state, "scripted-judge-model") == 8
    assert [r.score for r in again.results["good"]] == [1.0] * 4


async def test_a_failed_judge_call_is_an_error_and_is_retried_next_run(
    scripted: tuple[ScriptedState, Config], tmp_path: Path
) -> None:
    state, config = scripted
    golden = judged_set(tmp_path, cases=2)
    cache = ResultCache(tmp_path / "cache.db")
    run = await run_eval(config, golden, ["good"], cache, options("broken"))  # HTTP 200, truncated body
    assert run.judge_errors == 2
    assert all(r.judge_error and "judge call failed" in r.judge_error for r in run.results["good"])
    await run_eval(config, golden, ["good"], cache, options("broken"))
    cache.close()
    # 2 gradings × 2 attempts (a malformed body is retried once) × 2 runs: nothing was cached.
    assert judge_calls(state, "broken-model") == 8


async def test_the_gate_compares_only_cases_graded_on_both_sides(
    scripted: tuple[ScriptedState, Config], tmp_path: Path
) -> None:
    state, config = scripted
    state.judge_replies = ["9/10"]  # the first grading breaks, the others are read
    golden = judged_set(tmp_path, cases=4)
    cache = ResultCache(tmp_path / "cache.db")
    run = await run_eval(config, golden, ["good", "slow"], cache, options("scripted-judge"))
    cache.close()
    # Both candidates answer "Paris": their identical gradings shared the one broken reply.
    assert run.judge_errors == 2
    assert [r.case_id for c in ("good", "slow") for r in run.results[c] if r.score is None] == ["q0", "q0"]
    result = gate_run(run, "good", "slow", margin=0.02)
    assert result is not None and result.cases == 3


async def test_old_caches_lose_their_unreadable_verdicts(tmp_path: Path) -> None:
    ResultCache(tmp_path / "cache.db").close()
    with sqlite3.connect(tmp_path / "cache.db") as db:
        db.execute("INSERT INTO verdicts VALUES ('bad', 0.0, 0, 'judge reply not understood: ''9/10''')")
        db.execute("INSERT INTO verdicts VALUES ('good', 0.8, 1, 'judge 0.8: fine')")
    cache = ResultCache(tmp_path / "cache.db")
    assert cache.get_verdict("bad") is None
    good = cache.get_verdict("good")
    cache.close()
    assert good is not None and good.score == 0.8


CODES: list[tuple[list[Outcome], int, int]] = [
    ([], 0, 0),
    ([], 3, JUDGE_ERROR_EXIT),  # no gate at all: judge errors still fail the run
    (["non_inferior"], 1, JUDGE_ERROR_EXIT),
    (["inconclusive"], 1, JUDGE_ERROR_EXIT),
    (["worse"], 1, 1),  # proven worse on the graded cases: that is the headline
    (["non_inferior", "inconclusive"], 0, 3),
]


@pytest.mark.parametrize(("outcomes", "judge_errors", "code"), CODES)
def test_exit_code_with_judge_errors(outcomes: list[Outcome], judge_errors: int, code: int) -> None:
    assert run_exit_code(outcomes, judge_errors) == code


@pytest.fixture
def broken_judge_url() -> Iterator[str]:
    state = ScriptedState(answers=orjson.loads((FIXTURES / "answers.json").read_bytes()))
    state.judge_replies = ['{"score": 7}']
    with serving_in_thread(state) as url:
        yield url


def test_cli_run_exits_4_and_says_why(tmp_path: Path, broken_judge_url: str) -> None:
    config = write_eval_config(tmp_path, broken_judge_url)
    out = tmp_path / "evals"
    args = ["run", str(FIXTURES / "small.jsonl"), "-c", str(config), "-m", "good", "--judge", "scripted-judge",
            "--out", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(eval_command, args)
    assert result.exit_code == 4, result.output
    assert "1 answers could not be graded" in result.output and "capital-judged" in result.output
    record = orjson.loads((out / "small" / "latest.json").read_bytes())
    assert record["judge_errors"] == 1 and record["candidates"]["good"]["quality"] == round(
        6 / 7, 4
    )  # of 7 graded
    again = CliRunner().invoke(eval_command, args)  # the judge now answers: graded, exit 0
    assert again.exit_code == 0, again.output
