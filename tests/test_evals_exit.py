"""The exit code of ``modelyard eval run`` gating several candidates (issue 13): one candidate proven worse
fails the run even when another is inconclusive (the numeric maximum, 3, once hid it)."""

from __future__ import annotations

import pytest

from modelyard.evals.stats import Outcome, run_exit_code

CASES: list[tuple[list[Outcome], int]] = [
    ([], 0),
    (["non_inferior"], 0),
    (["non_inferior", "non_inferior"], 0),
    (["inconclusive"], 3),
    (["non_inferior", "inconclusive"], 3),
    (["worse"], 1),
    (["worse", "inconclusive"], 1),
    (["inconclusive", "worse", "non_inferior"], 1),
]


@pytest.mark.parametrize(("outcomes", "code"), CASES)
def test_any_candidate_proven_worse_fails_the_run(outcomes: list[Outcome], code: int) -> None:
    assert run_exit_code(outcomes) == code
