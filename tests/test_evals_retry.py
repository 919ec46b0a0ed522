"""Transient failures in an eval run: retried with back-off, Retry-After honoured, judges held to the same
limits as candidates. Over the scripted loopback fake, through the gateway's adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from modelyard.config import load_config
from modelyard.config.schema import Config
from modelyard.errors import UpstreamRateLimited, UpstreamUnavailable
from modelyard.evals.cache import ResultCache
from modelyard.evals.dispatch import Dispatcher, RetryPolicy
from modelyard.evals.golden import GoldenSet, load_golden_set, parse_lines
from modelyard.evals.runner import RunOptions, run_eval
from tests.fakes.common import serve_app
from tests.fakes.scripted_openai import FIXTURES, ScriptedState, create_app, write_eval_config

FAST_RETRY = RetryPolicy(retries=3, backoff_s=0.005, max_s=0.02)


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedState, Config]]:
    state = ScriptedState(answers=orjson.loads((FIXTURES / "answers.json").read_bytes()))
    async with serve_app(create_app(state)) as url:
        config_path = write_eval_config(tmp_path, url)
        # Plus an upstream model the fake does not know: 404, which is not transient.
        text = config_path.read_text(encoding="utf-8").replace(
            "models:\n", "models:\n  missing: {provider: fast, upstream_model: missing-model}\n"
        )
        config_path.write_text(text, encoding="utf-8")
        yield state, load_config(config_path)


@pytest.fixture
def golden() -> GoldenSet:
    return load_golden_set(FIXTURES / "small.jsonl")


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResultCache]:
    store = ResultCache(tmp_path / "cache.db")
    yield store
    store.close()


def options(**kw: object) -> RunOptions:
    base: dict[str, object] = {"concurrency": 8, "judge_model": "judge", "retry": FAST_RETRY}
    base.update(kw)
    return RunOptions(**base)  # type: ignore[arg-type]


def calls_to(state: ScriptedState, model: str) -> int:
    return sum(1 for m, _ in state.received if m == model)


async def test_a_model_that_is_rate_limited_twice_then_answers(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    run = await run_eval(config, golden, ["flaky", "good"], cache, options())
    assert all(r.error is None for r in run.results["flaky"])
    # Once it answers, flaky answers like good: the 429s cost nothing in quality.
    assert [r.score for r in run.results["flaky"]] == [r.score for r in run.results["good"]]
    assert calls_to(state, "flaky-model") == 3 * len(golden.cases)
    assert run.retries == 2 * len(golden.cases) and run.calls_made == 2 * len(golden.cases)
    assert cache.count("small") == 16  # the eventual answers are cached like any other


async def test_retry_after_is_honoured(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    state.flaky_script, state.retry_after = [429], "0.25"
    run = await run_eval(config, golden, ["flaky"], cache, options())
    assert all(r.error is None for r in run.results["flaky"])
    first: dict[str, float] = {}
    gaps = []
    for at, (model, prompt) in zip(state.arrivals, state.received, strict=True):
        if model == "flaky-model":
            if prompt in first:
                gaps.append(at - first[prompt])
            first.setdefault(prompt, at)
    # The back-off alone is ~5-10 ms; the provider asked for 250 ms and got it.
    assert len(gaps) == len(golden.cases) and min(gaps) >= 0.24


async def test_server_errors_are_retried_too(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    state.flaky_script = [503, 500]
    run = await run_eval(config, golden, ["flaky"], cache, options())
    assert all(r.error is None for r in run.results["flaky"])
    assert run.retries == 2 * len(golden.cases)


async def test_retries_are_bounded_and_failures_say_how_many_attempts(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    state.flaky_script = [429] * 10
    run = await run_eval(config, golden, ["flaky"], cache, options(retry=FAST_RETRY))
    for r in run.results["flaky"]:
        assert r.error is not None and r.error.startswith("rate_limit_exceeded")
        assert r.error.endswith("(after 4 attempts)") and not r.passed
    assert calls_to(state, "flaky-model") == 4 * len(golden.cases)
    assert cache.count("small") == 0  # failures are not cached: the next run tries again


async def test_no_retry_for_a_long_retry_after_or_a_client_error(
    scripted: tuple[ScriptedState, Config], golden: GoldenSet, cache: ResultCache
) -> None:
    state, config = scripted
    run = await run_eval(config, golden, ["overloaded", "missing"], cache, options())
    # Retry-After: 3600 is past max_retry_after_s (60): fail now rather than stall the run for an hour.
    assert calls_to(state, "overloaded-model") == len(golden.cases)
    assert all(r.error and "rate limit" in r.error for r in run.results["overloaded"])
    # 404 model_not_found is not transient: one attempt.
    assert calls_to(state, "missing-model") == len(golden.cases)
    assert all(r.error and r.error.startswith("model_not_found") for r in run.results["missing"])
    assert run.retries == 0


def _judged_set(n: int) -> GoldenSet:
    lines = [
        orjson.dumps(
            {
                "id": f"j{i}",
                "messages": [{"role": "user", "content": f"Question {i}"}],
                "checks": [{"type": "judge", "rubric": "Names the capital of France."}],
            }
        ).decode()
        for i in range(n)
    ]
    return GoldenSet("judged", tuple(parse_lines(lines, source="judged")))


async def test_judge_calls_share_the_provider_rate_limit(
    scripted: tuple[ScriptedState, Config], cache: ResultCache
) -> None:
    state, config = scripted
    state.slow_s = 0.0
    # Candidate on provider slowpool (unlimited); the judge on provider fast, limited to 10/s with a bucket
    # of 10: of 14 gradings, the last 4 wait for refills (~0.1 s each).
    run = await run_eval(config, _judged_set(14), ["slow"], cache, options(rates={"fast": 10.0}))
    judged = [t for t, (m, _) in zip(state.arrivals, state.received, strict=True) if m == "judge-model"]
    assert len(judged) == 14 and all(r.error is None for r in run.results["slow"])
    assert judged[-1] - judged[0] >= 0.25


async def test_judge_calls_share_the_concurrency_bound(
    scripted: tuple[ScriptedState, Config], cache: ResultCache
) -> None:
    state, config = scripted
    state.slow_s = 0.02
    await run_eval(config, _judged_set(12), ["slow", "good"], cache, options(concurrency=2))
    # Both candidates answer "I do not know": one grading per case, shared.
    assert calls_to(state, "judge-model") == 12
    assert state.max_in_flight <= 2


def test_backoff_doubles_with_jitter_capped_and_never_shorter_than_retry_after() -> None:
    dispatcher = Dispatcher(retry=RetryPolicy(retries=6, backoff_s=1.0, max_s=5.0))
    plain = UpstreamUnavailable("down", provider="p")
    for retry, low in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (6, 5.0)]:  # capped at max_s, then jitter
        waits = [dispatcher.delay(retry, plain) for _ in range(50)]
        assert all(low <= w <= low + 1.0 for w in waits)
        assert len(set(waits)) > 1  # jittered: concurrent retries do not fire in lockstep
    asked = UpstreamRateLimited("slow down", provider="p", retry_after=30.0)
    assert dispatcher.delay(1, asked) == 30.0
