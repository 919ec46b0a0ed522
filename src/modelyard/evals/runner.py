"""Run a golden set against several candidate models through the gateway's adapters.

Flow: check every model name and every check (nothing is spent on a run that cannot finish) → open one
adapter per provider involved → issue the (case × candidate) jobs in a fixed order, case-major, so an
interrupted run still holds complete pairs → each job reads the cache, or waits for a concurrency slot and
its provider's rate limit, calls the model and caches the answer → the checks score it.

Every model call (candidates' and judges') goes through one :class:`~modelyard.evals.dispatch.Dispatcher`:
one concurrency bound, a leaky bucket per provider, retries of transient failures with back-off. Jobs are
taken by a fixed pool of workers. The order of results never depends on timing: result *i* is always job *i*.

The run's id is fixed when it starts; with ``record_in_ledger`` every call the dispatcher sends is recorded
in the config's ledger under that id (metering.py), so the ledger's spend includes what evals cost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from modelyard.catalog.prices import load_catalog
from modelyard.config.schema import Config
from modelyard.errors import ConfigError
from modelyard.evals.cache import ResultCache
from modelyard.evals.calls import CallTag, ModelParams
from modelyard.evals.checks import CheckSet, build_checks, needed_models
from modelyard.evals.dispatch import Dispatcher, RetryPolicy
from modelyard.evals.golden import GoldenCase, GoldenSet
from modelyard.evals.metering import EvalMeter, open_meter
from modelyard.evals.preflight import describe, preflight
from modelyard.gateway.targets import Target, build_targets
from modelyard.providers.base import Adapter
from modelyard.providers.registry import build_adapter


class EvalSetupError(ConfigError):
    """The run cannot start (unknown model, embedding model as candidate); nothing was called."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One candidate's answer to one case, scored."""

    case_id: str
    candidate: str
    output: str
    #: None when the answer could not be graded (``judge_error``): never averaged as a 0.
    score: float | None
    passed: bool
    reason: str
    input_tokens: int
    output_tokens: int
    cost: Decimal | None
    latency_ms: float
    #: The candidate's call failed (the case scores 0: the candidate gave no answer).
    error: str | None
    cached: bool
    #: The answer could not be graded (a judge call failed, or its reply could not be read): no score.
    judge_error: str | None = None

    @property
    def graded(self) -> bool:
        return self.judge_error is None


@dataclass(frozen=True, slots=True)
class RunOptions:
    concurrency: int = 8
    #: provider name → requests per second allowed to it.
    rates: Mapping[str, float] = field(default_factory=dict)
    params: ModelParams = field(default_factory=ModelParams)
    judge_model: str | None = None
    #: Seconds one attempt may take before it counts as failed ("timeout"; retried like other failures).
    timeout_s: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    show_progress: bool = False


@dataclass(slots=True)
class EvalRun:
    """Everything a report, the gate and the decision engine need from one run."""

    set_name: str
    #: Fixed when the run starts: names its record and marks its calls in the ledger.
    run_id: str
    candidates: list[str]
    cases: list[GoldenCase]
    #: candidate → one result per case, in the set's order.
    results: dict[str, list[CaseResult]]
    params: ModelParams
    started_at: float
    seconds: float
    calls_made: int
    cache_hits: int
    #: Extra attempts after transient failures (candidates' and judges' calls).
    retries: int
    judge_spent: Decimal | None
    #: Gradings that failed (judge call failed, reply unreadable): those cases have no score.
    judge_errors: int
    #: candidate → provider, upstream model and price catalog version, for the record.
    targets: dict[str, dict[str, Any]]
    #: Calls recorded in the ledger (candidates' and judges'); 0 when the run did not record.
    calls_recorded: int = 0


def check_models(config: Config, models: Iterable[str]) -> None:
    """Raise :class:`EvalSetupError` for a model the gateway does not serve as a chat model."""
    available = sorted(name for name, m in config.models.items() if m.kind == "chat")
    for model in models:
        if model not in config.models:
            raise EvalSetupError(f"unknown model {model!r}; configured chat models: {', '.join(available)}")
        if config.models[model].kind != "chat":
            raise EvalSetupError(
                f"model {model!r} is an embedding model; chat models: {', '.join(available)}"
            )


@asynccontextmanager
async def open_targets(config: Config, models: Iterable[str]) -> AsyncIterator[dict[str, Target]]:
    """Targets for ``models`` exactly as the gateway builds them (same adapters, same prices); the
    adapters are closed on exit."""
    wanted = sorted(set(models))
    check_models(config, wanted)
    subset = config.model_copy(update={"models": {m: config.models[m] for m in wanted}})
    adapters: dict[str, Adapter] = {}
    try:
        for name in sorted({config.models[m].provider for m in wanted}):
            adapters[name] = build_adapter(name, config.providers[name])
        yield build_targets(subset, adapters, load_catalog(config.catalog.price_files))
    finally:
        for adapter in adapters.values():
            await adapter.close()


def new_run_id(started_at: float) -> str:
    """A run's id: its start time, UTC, to the second (records sort by it), and a random suffix, so two
    runs started in the same second (a resumed run, parallel CI jobs) never share a record or ledger id."""
    stamp = dt.datetime.fromtimestamp(started_at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


class Runner:
    """Runs one golden set; use :func:`run_eval` unless you hold the targets already."""

    def __init__(
        self,
        golden: GoldenSet,
        targets: Mapping[str, Target],
        cache: ResultCache,
        options: RunOptions,
        *,
        meter: EvalMeter | None = None,
        started_at: float | None = None,
    ) -> None:
        self.golden = golden
        self.targets = targets
        self.cache = cache
        self.options = options
        self.started_at = time.time() if started_at is None else started_at
        self.run_id = meter.run_id if meter is not None else new_run_id(self.started_at)
        self.dispatcher = Dispatcher(
            options.concurrency, options.rates, options.retry, options.timeout_s, meter
        )
        self.checks: CheckSet = build_checks(
            golden, targets, options.judge_model, cache, self.dispatcher.call
        )
        self.calls_made = 0
        self.cache_hits = 0

    async def run(self, candidates: list[str]) -> EvalRun:
        clock = time.perf_counter()
        jobs = [(case, c) for case in self.golden.cases for c in candidates]
        results: list[CaseResult | None] = [None] * len(jobs)
        pending = iter(enumerate(jobs))
        progress = self._progress()
        with progress or nullcontext():
            bar = progress.add_task(self.golden.name, total=len(jobs)) if progress else None

            async def worker() -> None:
                for index, (case, candidate) in pending:  # a shared iterator: each job taken once
                    results[index] = await self.one(case, candidate)
                    if progress is not None and bar is not None:
                        progress.advance(bar)

            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(max(1, self.options.concurrency), len(jobs))):
                        group.create_task(worker())
            finally:
                self.cache.commit()
        done = [r for r in results if r is not None]
        return EvalRun(
            set_name=self.golden.name,
            run_id=self.run_id,
            candidates=list(candidates),
            cases=list(self.golden.cases),
            results={c: [r for r in done if r.candidate == c] for c in candidates},
            params=self.options.params,
            started_at=self.started_at,
            seconds=time.perf_counter() - clock,
            calls_made=self.calls_made,
            cache_hits=self.cache_hits,
            retries=self.dispatcher.retries,
            judge_spent=self.checks.judge_spent,
            judge_errors=sum(1 for r in done if r.judge_error is not None),
            targets={c: _describe(self.targets[c]) for c in candidates},
            calls_recorded=self.dispatcher.meter.recorded if self.dispatcher.meter else 0,
        )

    async def one(self, case: GoldenCase, candidate: str) -> CaseResult:
        """Answer (from cache or the model) and score one case for one candidate."""
        target = self.targets[candidate]
        key = (self.golden.name, case.id, case.fingerprint(), candidate, self.options.params.key())
        answer = self.cache.get(key)
        cached = answer is not None
        if answer is None:
            self.calls_made += 1
            tag = CallTag("eval", case.workload, case.id)
            answer = await self.dispatcher.call(target, case.messages, self.options.params, tag)
            self.cache.put(key, answer)
        else:
            self.cache_hits += 1
        score: float | None
        judge_error = None
        if answer.error is not None:
            score, passed, reason = 0.0, False, f"call failed: {answer.error}"
        else:
            verdict = await self.checks.score(case, answer.output)
            score, passed, reason, judge_error = verdict.score, verdict.passed, verdict.reason, verdict.error
            if judge_error is not None:
                score = None
        return CaseResult(
            case.id, candidate, answer.output, score, passed, reason, answer.input_tokens,
            answer.output_tokens, answer.cost, answer.latency_ms, answer.error, cached, judge_error,
        )  # fmt: skip

    def _progress(self) -> Progress | None:
        if not self.options.show_progress:
            return None
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        return Progress(*columns, console=Console(stderr=True), transient=True)


def _describe(target: Target) -> dict[str, Any]:
    return {
        "provider": target.provider,
        "provider_kind": target.provider_kind,
        "upstream_model": target.upstream_model,
        "price_version": target.price_version,
        "priced": target.price is not None,
    }


async def run_eval(
    config: Config,
    golden: GoldenSet,
    candidates: list[str],
    cache: ResultCache,
    options: RunOptions,
    *,
    record_in_ledger: bool = False,
) -> EvalRun:
    """Run ``golden`` against ``candidates`` (public model names of ``config``); with ``record_in_ledger``,
    every call made is recorded in ``config``'s ledger (purpose ``eval`` or ``judge``, the run's id).

    Unknown models, checks that cannot run and missing dependencies raise :class:`EvalSetupError`, listing
    every problem (preflight.py), before any call is made.
    """
    if not candidates:
        raise EvalSetupError("name at least one candidate model")
    problems = preflight(golden, options.judge_model, config, candidates)
    if problems:
        raise EvalSetupError(describe(problems))
    models = set(candidates) | needed_models(golden, options.judge_model)
    check_models(config, models)
    started = time.time()
    async with open_targets(config, models) as targets:
        if not record_in_ledger:
            return await Runner(golden, targets, cache, options, started_at=started).run(candidates)
        async with open_meter(config, new_run_id(started)) as meter:
            runner = Runner(golden, targets, cache, options, meter=meter, started_at=started)
            return await runner.run(candidates)
