"""Per-level figures from raw request timings: throughput, latency percentiles, errors and goodput.

Throughput is counted over the level's issuing window, from its first request to the moment it stopped
issuing new ones: after that the batch drains and the server is no longer under the level's load. Each
request's output tokens are spread evenly between its first token and its end, and only the share that
fell inside the window counts, so long requests that straddle the window's edges are neither dropped
nor double counted. Percentiles are numpy's (linear interpolation between order statistics). Request
times are ``perf_counter_ns`` nanoseconds; the figures are in seconds and milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from modelyard.benchmark.client import RequestResult
from modelyard.benchmark.loadgen import LevelRun


@dataclass(frozen=True, slots=True)
class Slo:
    """The workload's objectives, in milliseconds; ``None`` means no objective."""

    ttft_ms: float | None = None
    e2e_ms: float | None = None

    def met_by(self, result: RequestResult) -> bool:
        if not result.ok:
            return False
        ttft = result.ttft
        if self.ttft_ms is not None and (ttft is None or ttft * 1000 > self.ttft_ms):
            return False
        return self.e2e_ms is None or result.e2e * 1000 <= self.e2e_ms


@dataclass(frozen=True, slots=True)
class LevelStats:
    """One level's figures, named as in the serving profile (plus counts the profile does not keep)."""

    concurrency: int
    request_rate: float | None
    requests_per_s: float
    output_tokens_per_s: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    ttft_p99_ms: float
    itl_p50_ms: float
    itl_p99_ms: float
    e2e_p50_ms: float
    e2e_p95_ms: float
    error_rate: float
    goodput: float
    requests: int
    errors: int
    input_tokens_mean: float
    output_tokens_mean: float
    window_s: float
    partial: bool
    #: The most frequent error kind and one of its messages, for the user; empty when there is none.
    first_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: ArrayLike, q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation; ``nan`` for no values."""
    array = np.asarray(values, dtype=np.float64)
    return float(np.percentile(array, q)) if array.size else math.nan


def _ms(nanoseconds: Iterable[int]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.fromiter(nanoseconds, dtype=np.float64) / 1e6


def _gaps_ms(results: Sequence[RequestResult]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Every inter-token gap of ``results``, in milliseconds, without a Python object per gap."""
    arrays = [np.frombuffer(r.gaps, dtype=np.int64) for r in results if r.gaps]
    return np.concatenate(arrays) / 1e6 if arrays else np.empty(0)


def summarise(run: LevelRun, slo: Slo) -> LevelStats:
    """The figures of one finished (or interrupted) level."""
    results = run.results
    ok = [r for r in results if r.ok]
    window = max(run.issue_end - run.start, 1) / 1e9
    tokens = sum(_tokens_in_window(r, run.start, run.issue_end) for r in ok)
    finished = sum(1 for r in ok if run.start <= r.end <= run.issue_end)
    ttfts = _ms(r.first_token - r.start for r in ok if r.first_token is not None)
    gaps = _gaps_ms(ok)
    e2es = _ms(r.end - r.start for r in ok)
    errors = len(results) - len(ok)
    return LevelStats(
        concurrency=_concurrency(run, ok),
        request_rate=run.spec.request_rate,
        requests_per_s=finished / window,
        output_tokens_per_s=tokens / window,
        ttft_p50_ms=percentile(ttfts, 50),
        ttft_p95_ms=percentile(ttfts, 95),
        ttft_p99_ms=percentile(ttfts, 99),
        itl_p50_ms=percentile(gaps, 50),
        itl_p99_ms=percentile(gaps, 99),
        e2e_p50_ms=percentile(e2es, 50),
        e2e_p95_ms=percentile(e2es, 95),
        error_rate=errors / len(results) if results else 0.0,
        goodput=sum(1 for r in results if slo.met_by(r)) / len(results) if results else 0.0,
        requests=len(results),
        errors=errors,
        input_tokens_mean=sum(r.input_tokens for r in ok) / len(ok) if ok else 0.0,
        output_tokens_mean=sum(r.output_tokens for r in ok) / len(ok) if ok else 0.0,
        window_s=window,
        partial=run.partial,
        first_error=_first_error(results),
    )


def _tokens_in_window(result: RequestResult, start: int, end: int) -> float:
    first = result.first_token if result.first_token is not None else result.end
    if result.end <= first:  # all tokens at one instant
        return float(result.output_tokens) if start <= first <= end else 0.0
    overlap = min(result.end, end) - max(first, start)
    return result.output_tokens * max(overlap, 0.0) / (result.end - first)


def _concurrency(run: LevelRun, ok: Sequence[RequestResult]) -> int:
    """The level's concurrency; for a rate level, the mean number in flight (Little's law: rate × e2e)."""
    if run.spec.concurrency is not None:
        return run.spec.concurrency
    if not ok:
        return 1
    rate = len(run.results) / (max(run.issue_end - run.start, 1) / 1e9)
    mean_e2e = sum(r.e2e for r in ok) / len(ok)
    return max(1, round(rate * mean_e2e))


def _first_error(results: Sequence[RequestResult]) -> str:
    kinds: dict[str, RequestResult] = {}
    counts: dict[str, int] = {}
    for r in results:
        if r.error is not None:
            kinds.setdefault(r.error, r)
            counts[r.error] = counts.get(r.error, 0) + 1
    if not counts:
        return ""
    kind = max(counts, key=counts.__getitem__)
    return f"{kind}: {kinds[kind].detail}".strip().rstrip(":")
