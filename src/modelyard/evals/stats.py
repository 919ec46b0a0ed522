"""The regression gate: is candidate B non-inferior to baseline A on the same cases?

Two paired tests on the cases both answered:

- a **bootstrap confidence interval** of the mean score difference (B − A): resample the *cases* with
  replacement (pairs stay together), with a fixed seed so the same data always gives the same interval;
- an **exact McNemar test** on pass/fail: only discordant cases carry information (A passed and B failed:
  ``b``; A failed and B passed: ``c``); under "no difference" ``b`` is Binomial(b + c, 1/2).

Verdict, with margin δ and confidence 1 − α (default 95%):

- *non-inferior* when the interval's lower bound is at least −δ;
- *worse* when the whole interval lies below −δ, or the point estimate does and McNemar finds B worse;
- otherwise *inconclusive*, with the number of cases that would likely settle it: the interval's
  half-width shrinks as 1/√n, so n × (half-width / (difference + δ))² cases would put the lower bound at −δ
  if the difference stayed where it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import binomtest  # type: ignore[import-untyped]

Outcome = Literal["non_inferior", "worse", "inconclusive"]
#: Exit codes for CI: 0 non-inferior, 1 worse, 3 inconclusive (2 is click's usage error; 4 judge errors,
#: below).
EXIT_CODES: dict[Outcome, int] = {"non_inferior": 0, "worse": 1, "inconclusive": 3}
#: Which outcome a run of several gates reports: one candidate proven worse fails the run, whatever the
#: others show (the codes' numeric order would let "inconclusive" hide it).
_SEVERITY: tuple[Outcome, ...] = ("non_inferior", "inconclusive", "worse")


#: Exit code of a run where some answers could not be graded (a judge call failed or its reply could not
#: be read): its results are incomplete, whatever the gates on the graded cases say, unless one of them
#: already proves a candidate worse.
JUDGE_ERROR_EXIT = 4


def run_exit_code(outcomes: Sequence[Outcome], judge_errors: int = 0) -> int:
    """The exit code of a run gating several candidates: worse (1) if any is; else 4 when any answer could
    not be graded; else inconclusive (3) if any is; else 0."""
    worst: Outcome = max(outcomes, key=_SEVERITY.index, default="non_inferior")
    if worst != "worse" and judge_errors > 0:
        return JUDGE_ERROR_EXIT
    return EXIT_CODES[worst]


@dataclass(frozen=True, slots=True)
class McNemar:
    #: Cases the baseline passed and the candidate failed, and the reverse.
    b: int
    c: int
    p_value: float


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True, slots=True)
class GateResult:
    baseline: str
    candidate: str
    cases: int
    margin: float
    difference: Interval
    mcnemar: McNemar
    outcome: Outcome
    #: Extra cases that would likely settle an inconclusive verdict (None when not estimable).
    more_cases: int | None
    text: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def exact_mcnemar(baseline_passed: Sequence[bool], candidate_passed: Sequence[bool]) -> McNemar:
    """Two-sided exact McNemar test on paired pass/fail outcomes."""
    b = sum(1 for a, x in zip(baseline_passed, candidate_passed, strict=True) if a and not x)
    c = sum(1 for a, x in zip(baseline_passed, candidate_passed, strict=True) if x and not a)
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return McNemar(b, c, min(1.0, p))


def bootstrap_difference(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of mean(candidate − baseline), resampling cases as pairs."""
    diff = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    if diff.size == 0:
        raise ValueError("no paired cases to compare")
    rng = np.random.default_rng(seed)
    # Resample in blocks so memory stays bounded for large sets.
    means = np.empty(resamples)
    block = max(1, 2_000_000 // diff.size)
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        picks = rng.integers(0, diff.size, size=(count, diff.size))
        means[start : start + count] = diff[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(diff.mean()), float(low), float(high), confidence)


def _more_cases(n: int, interval: Interval, margin: float) -> int | None:
    half_width = (interval.high - interval.low) / 2
    room = interval.mean + margin
    if room <= 0 or half_width <= 0:
        return None  # the estimate itself is below the margin: more cases would not show non-inferiority
    needed = math.ceil(n * (half_width / room) ** 2)
    return max(needed - n, 1)


def gate(
    baseline: str,
    candidate: str,
    baseline_scores: Sequence[float],
    candidate_scores: Sequence[float],
    baseline_passed: Sequence[bool],
    candidate_passed: Sequence[bool],
    *,
    margin: float = 0.02,
    confidence: float = 0.95,
    seed: int = 0,
) -> GateResult:
    """Compare paired results (same cases, same order) and give the verdict with its reasons."""
    interval = bootstrap_difference(baseline_scores, candidate_scores, confidence=confidence, seed=seed)
    test = exact_mcnemar(baseline_passed, candidate_passed)
    alpha = 1 - confidence
    more = None
    if interval.low >= -margin:
        outcome: Outcome = "non_inferior"
    elif interval.high < -margin or (interval.mean < -margin and test.p_value < alpha and test.b > test.c):
        outcome = "worse"
    else:
        outcome = "inconclusive"
        more = _more_cases(len(baseline_scores), interval, margin)
    text = _verdict_text(candidate, baseline, outcome, interval, test, margin, more)
    return GateResult(baseline, candidate, len(baseline_scores), margin, interval, test, outcome, more, text)


def _verdict_text(
    candidate: str,
    baseline: str,
    outcome: Outcome,
    ci: Interval,
    test: McNemar,
    margin: float,
    more: int | None,
) -> str:
    level = f"{ci.confidence:.0%}"
    diff = f"score difference {ci.mean:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]"
    mc = f"McNemar b={test.b} c={test.c} p={test.p_value:.3g}"
    if outcome == "non_inferior":
        head = f"{candidate} is non-inferior to {baseline} within margin δ={margin:g} at {level} confidence"
    elif outcome == "worse":
        head = f"{candidate} is worse than {baseline} (beyond margin δ={margin:g})"
    elif more is not None:
        head = f"inconclusive: need ~{more} more cases to decide {candidate} vs {baseline} at δ={margin:g}"
    else:
        head = f"inconclusive: {candidate} scores below {baseline} by more than δ={margin:g} on these cases"
    return f"{head}; {diff}; {mc}"
