"""Per-candidate summaries of a run, the gate between two candidates, and the JSON record on disk.

The record is what the decision engine reads as its quality input: one JSON file per run under
``.modelyard/evals/<set>/<run_id>.json`` (and ``latest.json`` beside it), whose ``quality`` list has the
shape of ``quality:`` entries in the organisation profile. The shape is documented in docs/evals.md.

Cost per 1k cases uses each answer's measured cost, also for answers served from the cache (the model's
cost, not this run's spend); it is ``None`` ("unpriced") when any answered case had no price, never $0.

A case whose answer could not be graded (a judge error) has no score: it is left out of the quality, the
pass rate and the gate, and counted in ``judge_errors``; the run's exit code says so (stats.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelyard.evals.runner import CaseResult, EvalRun
from modelyard.evals.stats import GateResult, gate

SCHEMA = "modelyard.eval_run/1"
DEFAULT_DIR = Path(".modelyard/evals")
WORST = 5


@dataclass(frozen=True, slots=True)
class CandidateSummary:
    candidate: str
    cases: int
    errors: int
    #: Answers that could not be graded (judge errors): outside quality, pass rate and the gate.
    judge_errors: int
    #: Mean score of the graded cases; None when no case could be graded.
    quality: float | None
    pass_rate: float | None
    cost_usd: Decimal | None
    cost_per_1k_usd: Decimal | None
    p50_ms: float | None
    p95_ms: float | None
    worst: list[CaseResult]
    ungraded: list[CaseResult]


def summarise(candidate: str, results: list[CaseResult]) -> CandidateSummary:
    n = len(results)
    answered = [r for r in results if r.error is None]
    graded = [r for r in results if r.score is not None]
    latencies = np.array([r.latency_ms for r in answered], dtype=float)
    cost: Decimal | None = Decimal(0)
    for r in answered:
        cost = None if cost is None or r.cost is None else cost + r.cost
    if not answered:
        cost = None
    p50, p95 = (float(x) for x in np.percentile(latencies, [50, 95])) if answered else (None, None)
    return CandidateSummary(
        candidate=candidate,
        cases=n,
        errors=n - len(answered),
        judge_errors=n - len(graded),
        quality=sum(r.score for r in graded if r.score is not None) / len(graded) if graded else None,
        pass_rate=sum(r.passed for r in graded) / len(graded) if graded else None,
        cost_usd=cost,
        cost_per_1k_usd=cost * 1000 / len(answered) if cost is not None else None,
        p50_ms=p50,
        p95_ms=p95,
        worst=sorted(graded, key=lambda r: (r.score or 0.0, r.case_id))[:WORST],
        ungraded=[r for r in results if r.score is None],
    )


def gate_run(
    run: EvalRun, baseline: str, candidate: str, margin: float, confidence: float = 0.95
) -> GateResult | None:
    """The gate on the cases both candidates have a score for in ``run``; None when there is none (every
    pair has a judge error: nothing to compare)."""
    a = {r.case_id: r.score for r in run.results[baseline]}
    b = {r.case_id: r.score for r in run.results[candidate]}
    pairs = [(case.id, a.get(case.id), b.get(case.id)) for case in run.cases]
    scored = [(i, x, y) for i, x, y in pairs if x is not None and y is not None]
    if not scored:
        return None
    ids = [i for i, _, _ in scored]
    passed_a = {r.case_id: r.passed for r in run.results[baseline]}
    passed_b = {r.case_id: r.passed for r in run.results[candidate]}
    return gate(
        baseline, candidate,
        [x for _, x, _ in scored], [y for _, _, y in scored],
        [passed_a[i] for i in ids], [passed_b[i] for i in ids],
        margin=margin, confidence=confidence, seed=run.params.seed or 0,
    )  # fmt: skip


def run_id(run: EvalRun) -> str:
    return run.run_id


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.000001")))


def _workload(run: EvalRun) -> str | None:
    workloads = {c.workload for c in run.cases}
    return workloads.pop() if len(workloads) == 1 else None


def run_document(run: EvalRun, summaries: list[CandidateSummary], gates: list[GateResult]) -> dict[str, Any]:
    """The run as the JSON record described in docs/evals.md."""
    rid, workload = run_id(run), _workload(run)
    return {
        "schema": SCHEMA,
        "run_id": rid,
        "set": run.set_name,
        "workload": workload,
        "started_at": dt.datetime.fromtimestamp(run.started_at, dt.UTC).isoformat(),
        "seconds": round(run.seconds, 3),
        "cases": len(run.cases),
        "params": {
            "temperature": run.params.temperature,
            "max_tokens": run.params.max_tokens,
            "seed": run.params.seed,
        },
        "calls_made": run.calls_made,
        "cache_hits": run.cache_hits,
        "retries": run.retries,
        "judge_spent_usd": _usd(run.judge_spent),
        "judge_errors": run.judge_errors,
        "candidates": {s.candidate: _candidate(s, run.targets[s.candidate]) for s in summaries},
        "quality": [
            {
                "workload": workload,
                "model": s.candidate,
                "score": _round(s.quality),
                "source": f"modelyard eval: set {run.set_name}, run {rid}, {s.cases} cases",
            }
            for s in summaries
            if workload is not None and s.quality is not None
        ],
        "gates": [_gate(g) for g in gates],
        "results": [_result(r) for c in run.candidates for r in run.results[c]],
    }


def _candidate(s: CandidateSummary, target: dict[str, Any]) -> dict[str, Any]:
    return {
        **target,
        "cases": s.cases,
        "errors": s.errors,
        "judge_errors": s.judge_errors,
        "quality": _round(s.quality),
        "pass_rate": _round(s.pass_rate),
        "cost_usd": _usd(s.cost_usd),
        "cost_per_1k_cases_usd": _usd(s.cost_per_1k_usd),
        "latency_ms": {"p50": s.p50_ms, "p95": s.p95_ms},
        "worst": [
            {"case_id": r.case_id, "score": r.score, "reason": r.reason, "output": r.output[:500]}
            for r in s.worst
        ],
        "ungraded": [{"case_id": r.case_id, "judge_error": r.judge_error} for r in s.ungraded],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _gate(g: GateResult) -> dict[str, Any]:
    d = g.difference
    return {
        "baseline": g.baseline,
        "candidate": g.candidate,
        "cases": g.cases,
        "margin": g.margin,
        "outcome": g.outcome,
        "exit_code": g.exit_code,
        "difference": {"mean": d.mean, "low": d.low, "high": d.high, "confidence": d.confidence},
        "mcnemar": {"b": g.mcnemar.b, "c": g.mcnemar.c, "p_value": g.mcnemar.p_value},
        "more_cases": g.more_cases,
        "text": g.text,
    }


def _result(r: CaseResult) -> dict[str, Any]:
    return {
        "case_id": r.case_id, "candidate": r.candidate, "score": r.score, "passed": r.passed,
        "reason": r.reason, "latency_ms": round(r.latency_ms, 3), "cost_usd": _usd(r.cost),
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "error": r.error, "cached": r.cached,
        "judge_error": r.judge_error,
    }  # fmt: skip


def write_record(document: dict[str, Any], out_dir: Path = DEFAULT_DIR) -> Path:
    """Write ``<out_dir>/<set>/<run_id>.json`` and ``latest.json``; return the run's file."""
    folder = out_dir / str(document["set"])
    folder.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    path = folder / f"{document['run_id']}.json"
    path.write_bytes(data)
    (folder / "latest.json").write_bytes(data)
    return path
