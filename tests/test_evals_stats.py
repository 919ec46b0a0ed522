"""The regression gate's statistics, against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.evals.stats import bootstrap_difference, exact_mcnemar, gate


def test_exact_mcnemar_on_a_hand_computed_table() -> None:
    # 2x2 table: both pass 20, baseline only (b) 1, candidate only (c) 9, both fail 5.
    # Exact two-sided p = 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * (1 + 10) / 1024 = 22/1024.
    baseline = [True] * 20 + [True] * 1 + [False] * 9 + [False] * 5
    candidate = [True] * 20 + [False] * 1 + [True] * 9 + [False] * 5
    result = exact_mcnemar(baseline, candidate)
    assert (result.b, result.c) == (1, 9)
    assert result.p_value == pytest.approx(22 / 1024)


def test_mcnemar_without_discordant_pairs_is_p_one() -> None:
    assert exact_mcnemar([True, False], [True, False]).p_value == 1.0


def test_mcnemar_symmetric_table_is_not_significant() -> None:
    # b = c = 3: p = 1 (the most likely outcome under no difference).
    result = exact_mcnemar([True] * 3 + [False] * 3, [False] * 3 + [True] * 3)
    assert result.p_value == pytest.approx(1.0)


def test_bootstrap_interval_contains_the_known_difference() -> None:
    rng = np.random.default_rng(7)
    baseline = rng.uniform(0.5, 1.0, 400)
    noise = rng.normal(0, 0.1, 400)
    candidate = baseline + 0.05 + (noise - noise.mean())  # the paired differences average exactly 0.05
    interval = bootstrap_difference(baseline.tolist(), candidate.tolist(), seed=1)
    assert interval.low < 0.05 < interval.high
    assert interval.high - interval.low < 0.05  # and it is tight enough to mean something


def test_bootstrap_is_deterministic_for_a_seed_and_exact_for_a_constant_difference() -> None:
    a, b = [0.2, 0.4, 0.9, 1.0], [0.3, 0.5, 1.0, 1.1]
    assert bootstrap_difference(a, b, seed=3) == bootstrap_difference(a, b, seed=3)
    constant = bootstrap_difference(a, b, seed=3)
    assert constant.low == pytest.approx(0.1) and constant.high == pytest.approx(0.1)


def test_gate_non_inferior_when_equal() -> None:
    scores = [1.0] * 90 + [0.0] * 10
    result = gate("A", "B", scores, scores, [s == 1 for s in scores], [s == 1 for s in scores], margin=0.02)
    assert result.outcome == "non_inferior" and result.exit_code == 0
    assert result.text.startswith("B is non-inferior to A within margin δ=0.02 at 95% confidence")


def test_gate_worse_when_clearly_below_the_margin() -> None:
    base = [1.0] * 100
    cand = [1.0] * 60 + [0.0] * 40
    result = gate("A", "B", base, cand, [True] * 100, [s == 1 for s in cand], margin=0.05)
    assert result.outcome == "worse" and result.exit_code == 1
    assert result.mcnemar.b == 40 and result.mcnemar.c == 0


def test_gate_inconclusive_says_how_many_more_cases() -> None:
    # 20 cases, candidate 1 case worse: interval too wide to show δ=0.1 non-inferiority, estimate above -δ.
    base = [1.0] * 20
    cand = [1.0] * 19 + [0.0]
    result = gate("A", "B", base, cand, [True] * 20, [s == 1 for s in cand], margin=0.1)
    assert result.outcome == "inconclusive" and result.exit_code == 3
    assert result.more_cases is not None and result.more_cases > 0
    assert f"need ~{result.more_cases} more cases" in result.text
