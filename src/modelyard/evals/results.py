"""Per-candidate summaries of a run, the gate between two candidates, and the JSON record on disk.

The record is what the decision engine reads as its quality input: one JSON file per run under
``.modelyard/evals/<set>/<run_id>.json`` (and ``latest.json`` beside it), whose ``quality`` list has the
shape of ``quality:`` entries in the organisation profile. The shape is documented in docs/evals.md.

Cost per 1k cases uses each answer's measured cost, also for answers served from the cache (the model's
cost, not this run's spend); it is ``None`` ("unpriced") when any answered case had no price, never $0.
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
    quality: float
    pass_rate: float
    cost_usd: Decimal | None
    cost_per_1k_usd: Decimal | None
    p50_ms: float | None
    p95_ms: float | None
    worst: list[CaseResult]


def summarise(candidate: str, results: list[CaseResult]) -> CandidateSummary:
    n = len(results)
    answered = [r for r in results if r.error is None]
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
        quality=sum(r.score for r in results) / n if n else 0.0,
        pass_rate=sum(r.passed for r in results) / n if n else 0.0,
        cost_usd=cost,
        cost_per_1k_usd=cost * 1000 / len(answered) if cost is not None else None,
        p50_ms=p50,
        p95_ms=p95,
        worst=sorted(results, key=lambda r: (r.score, r.case_id))[:WORST],
    )


def gate_run(
    run: EvalRun, baseline: str, candidate: str, margin: float, confidence: float = 0.95
) -> GateResult:
    """The gate on the cases both candidates answered in ``run`` (always the same cases, by construction)."""
    a = {r.case_id: r for r in run.results[baseline]}
    b = {r.case_id: r for r in run.results[candidate]}
    ids = [case.id for case in run.cases if case.id in a and case.id in b]
    return gate(
        baseline, candidate,
        [a[i].score for i in ids], [b[i].score for i in ids],
        [a[i].passed for i in ids], [b[i].passed for i in ids],
        margin=margin, confidence=confidence, seed=run.params.seed or 0,
    )  # fmt: skip


def run_id(run: EvalRun) -> str:
    return dt.datetime.fromtimestamp(run.started_at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")


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
        "candidates": {s.candidate: _candidate(s, run.targets[s.candidate]) for s in summaries},
        "quality": [
            {
                "workload": workload,
                "model": s.candidate,
                "score": round(s.quality, 4),
                "source": f"modelyard eval: set {run.set_name}, run {rid}, {s.cases} cases",
            }
            for s in summaries
            if workload is not None
        ],
        "gates": [_gate(g) for g in gates],
        "results": [_result(r) for c in run.candidates for r in run.results[c]],
    }


def _candidate(s: CandidateSummary, target: dict[str, Any]) -> dict[str, Any]:
    return {
        **target,
        "cases": s.cases,
        "errors": s.errors,
        "quality": round(s.quality, 4),
        "pass_rate": round(s.pass_rate, 4),
        "cost_usd": _usd(s.cost_usd),
        "cost_per_1k_cases_usd": _usd(s.cost_per_1k_usd),
        "latency_ms": {"p50": s.p50_ms, "p95": s.p95_ms},
        "worst": [
            {"case_id": r.case_id, "score": r.score, "reason": r.reason, "output": r.output[:500]}
            for r in s.worst
        ],
    }


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
