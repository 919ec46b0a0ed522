"""The runner end to end over a loopback fake with scripted answers, through the gateway's adapters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from modelyard.config import load_config
from modelyard.config.schema import Config
from modelyard.evals.cache import ResultCache
from modelyard.evals.calls import ModelParams
from modelyard.evals.dispatch import RetryPolicy
from modelyard.evals.golden import GoldenSet, load_golden_set
from modelyard.evals.report import render_html
from modelyard.evals.results import gate_run, run_document, summarise, write_record
from modelyard.evals.runner import EvalSetupError, RunOptions, run_eval
from tests.fakes.common import serve_app
from tests.fakes.scripted_openai import FIXTURES, ScriptedState, create_app, write_eval_config

CANDIDATES = ["good", "badjson", "slow"]
MILLION = Decimal(1_000_000)


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedState, Config]]:
    state = ScriptedState(answers=orjson.loads((FIXTURES / "answers.json").read_bytes()))
    async with serve_app(create_app(state)) as url:
        yield state, load_config(write_eval_config(tmp_path, url))


@pytest.fixture
def golden() -> GoldenSet:
    return load_golden_set(FIXTURES / "small.jsonl")


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResultCache]:
    store = ResultCache(tmp_path / "cache.db")
    yield store
    store.close()


def options(**kw: object) -> RunOptions:
    # Retries keep their production logic but wait milliseconds, so failures stay fast to test.
    base: dict[str, object] = {
        "concurrency": 4,
        "judge_model": "judge",
        "retry": RetryPolicy(retries=2, backoff_s=0.005, max_s=0.02),
    }
    base.update(kw)
    return RunOptions(**base)  # type: ignore[arg-type]


async def test_three_candidates_end_to_end(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    run = await run_eval(config, golden, CANDIDATES, cache, options())
    ids = [c.id for c in golden.cases]
    for candidate in CANDIDATES:
        assert [r.case_id for r in run.results[candidate]] == ids  # deterministic order, whatever the timing
    good = {r.case_id: r for r in run.results["good"]}
    assert [i for i, r in good.items() if not r.passed] == ["capital-au"]
    assert good["capital-au"].reason == "exact: expected 'Canberra', got 'Sydney'"
    assert good["capital-judged"].passed and "judge 1" in good["capital-judged"].reason
    bad = {r.case_id: r for r in run.results["badjson"]}
    assert not bad["invoice-1"].passed and "json_schema: not valid JSON" in bad["invoice-1"].reason
    assert bad["capital-fr"].passed
    # Every case went to every candidate once; the three identical answers were graded by one judge call.
    models = [m for m, _ in state.received]
    assert models.count("good-model") == models.count("bad-json-model") == models.count("slow-model") == 8
    assert models.count("judge-model") == 1
    assert run.calls_made == 24 and run.cache_hits == 0


async def test_cost_tokens_and_latency_are_measured_like_the_gateway(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    state.slow_s = 0.08
    run = await run_eval(config, golden, CANDIDATES, cache, options())
    for r in run.results[
        "good"
    ]:  # good-model: $1 in / $2 out per 1M tokens (tests/fixtures/evals/prices.yaml)
        assert r.input_tokens > 0 and r.output_tokens > 0
        assert r.cost == (Decimal(r.input_tokens) * 1 + Decimal(r.output_tokens) * 2) / MILLION
    assert all(r.cost is None for r in run.results["slow"])  # unpriced stays unpriced, never $0
    summaries = {c: summarise(c, run.results[c]) for c in CANDIDATES}
    assert summaries["slow"].cost_per_1k_usd is None
    good = summaries["good"]
    assert good.cost_usd == sum((r.cost for r in run.results["good"] if r.cost), Decimal(0))
    assert good.cost_per_1k_usd == good.cost_usd * 1000 / 8
    assert summaries["slow"].p50_ms is not None and summaries["slow"].p50_ms >= 80
    assert good.p95_ms is not None and good.p95_ms < summaries["slow"].p50_ms
    assert good.quality == pytest.approx(7 / 8) and good.pass_rate == pytest.approx(7 / 8)
    assert run.judge_spent is not None and run.judge_spent > 0


async def test_unknown_model_fails_before_any_call(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    with pytest.raises(
        EvalSetupError, match=r"unknown model 'gpt-9' \(candidate\); configured chat models: badjson, broken"
    ):
        await run_eval(config, golden, ["good", "gpt-9"], cache, options())
    with pytest.raises(EvalSetupError, match=r"unknown model 'nope' \(judge model\)"):
        await run_eval(config, golden, ["good"], cache, options(judge_model="nope"))
    with pytest.raises(EvalSetupError, match=r"'capital-judged'.*needs 'model' or the run's --judge"):
        await run_eval(config, golden, ["good"], cache, options(judge_model=None))
    assert state.received == []


async def test_resume_after_an_interrupted_run_calls_only_what_is_missing(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, tmp_path: Path
) -> None:
    state, config = scripted
    first_cache = ResultCache(tmp_path / "resume.db")
    task = asyncio.create_task(run_eval(config, golden, CANDIDATES, first_cache, options(concurrency=2)))
    while sum(1 for m, _ in state.received if m != "judge-model") < 9:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    first_cache.close()

    cache = ResultCache(tmp_path / "resume.db")
    done_before = cache.count("small")
    assert 0 < done_before < 24
    run = await run_eval(config, golden, CANDIDATES, cache, options())
    assert run.cache_hits == done_before
    assert run.calls_made == 24 - done_before
    assert all(len(run.results[c]) == 8 for c in CANDIDATES)
    again = await run_eval(config, golden, CANDIDATES, cache, options())
    assert again.calls_made == 0 and again.cache_hits == 24
    assert [r.score for r in again.results["good"]] == [r.score for r in run.results["good"]]
    cache.close()


async def test_changed_params_rerun_the_cases(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    _state, config = scripted
    await run_eval(config, golden, ["good"], cache, options())
    rerun = await run_eval(config, golden, ["good"], cache, options(params=ModelParams(temperature=0.7)))
    assert rerun.calls_made == 8


async def test_concurrency_is_bounded(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    await run_eval(config, golden, ["slow"], cache, options(concurrency=2))
    assert state.max_in_flight == 2


async def test_per_provider_rate_limit(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    # 16 calls to provider "fast" at 10/s with a bucket of 10: the last 6 wait ~0.6 s for refills.
    await run_eval(config, golden, ["good", "badjson"], cache, options(rates={"fast": 10.0}))
    arrivals = [t for t, (m, _) in zip(state.arrivals, state.received, strict=True) if m != "judge-model"]
    assert len(arrivals) == 16
    assert arrivals[-1] - arrivals[0] >= 0.45


async def test_timeouts_and_broken_responses_score_zero_and_are_not_cached(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    state.slow_s = 0.5
    run = await run_eval(config, golden, ["slow", "broken"], cache, options(timeout_s=0.1, concurrency=16))
    for r in run.results["slow"]:
        assert r.error is not None and r.error.startswith("timeout")
        assert r.error.endswith("(after 3 attempts)")  # a timeout is transient: retried twice
        assert r.score == 0 and not r.passed and r.reason.startswith("call failed: timeout")
    for r in run.results["broken"]:
        assert r.error is not None and not r.passed
    assert cache.count("small") == 0


async def test_record_and_html_page(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache, tmp_path: Path
) -> None:
    _state, config = scripted
    run = await run_eval(config, golden, CANDIDATES, cache, options())
    summaries = [summarise(c, run.results[c]) for c in CANDIDATES]
    gates = [gate_run(run, "good", "badjson", margin=0.05)]
    document = run_document(run, summaries, gates)
    path = write_record(document, tmp_path / "evals")
    assert path.parent == tmp_path / "evals" / "small"
    stored = orjson.loads((path.parent / "latest.json").read_bytes())
    assert stored["schema"] == "modelyard.eval_run/1" and stored["workload"] == "support"
    assert {q["model"] for q in stored["quality"]} == set(CANDIDATES)
    assert stored["quality"][0] == {
        "workload": "support", "model": "good", "score": 0.875,
        "source": f"modelyard eval: set small, run {stored['run_id']}, 8 cases",
    }  # fmt: skip
    assert stored["candidates"]["slow"]["cost_per_1k_cases_usd"] is None
    assert stored["candidates"]["good"]["worst"][0]["case_id"] == "capital-au"
    assert stored["gates"][0]["mcnemar"] == {"b": 2, "c": 0, "p_value": 0.5}
    assert len(stored["results"]) == 24
    page = render_html(document)
    assert "Worst cases" in page and "capital-au" in page and "unpriced" in page
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
