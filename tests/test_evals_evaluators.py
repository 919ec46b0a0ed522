"""Each evaluator on answers that must pass and answers that must fail."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.evals.evaluators import CheckError, Verdict, build_deterministic, last_number
from modelyard.evals.golden import Check, GoldenCase
from modelyard.evals.model_evaluators import SimilarityEvaluator, parse_judgement

SCHEMA = {
    "type": "object",
    "required": ["vendor", "total"],
    "properties": {"vendor": {"type": "string"}, "total": {"type": "number"}},
}


def case(expected: str | None = None, schema: dict[str, Any] | None = None) -> GoldenCase:
    return GoldenCase(
        id="c", messages=[{"role": "user", "content": "q"}], expected=expected, json_schema=schema
    )


async def judge(check: Check, golden: GoldenCase, output: str) -> Verdict:
    return await build_deterministic(check).evaluate(golden, output)


# (check, case, answer, must pass, expected score)
TABLE: list[tuple[Check, GoldenCase, str, bool, float]] = [
    (Check("exact"), case("Paris"), "  Paris\n", True, 1.0),
    (Check("exact"), case("Paris"), "paris", False, 0.0),
    (Check("exact", {"ignore_case": True}), case("Paris"), "PARIS", True, 1.0),
    (Check("exact", {"any_of": ["4", "four"]}), case("4"), "four", True, 1.0),
    (Check("exact"), case("Paris"), "Paris, France", False, 0.0),
    (Check("contains"), case("Paris"), "It is Paris.", True, 1.0),
    (Check("contains"), case("Paris"), "It is Lyon.", False, 0.0),
    (Check("contains", {"values": ["red", "blue"], "ignore_case": True}), case(), "Red, Blue", True, 1.0),
    (Check("contains", {"values": ["red", "blue"]}), case(), "red and green", False, 0.5),
    (Check("regex", {"pattern": r"\b100\d\d\b"}), case(), "Try 10001.", True, 1.0),
    (Check("regex", {"pattern": r"\b100\d\d\b"}), case(), "Try 90210.", False, 0.0),
    (Check("regex", {"pattern": "^yes$", "flags": "i"}), case(), "YES", True, 1.0),
    (Check("json_schema"), case(schema=SCHEMA), '{"vendor": "ACME", "total": 12.5}', True, 1.0),
    (Check("json_schema"), case(schema=SCHEMA), '{"vendor": "ACME", "total": "12.5"}', False, 0.0),
    (Check("json_schema"), case(schema=SCHEMA), '{"vendor": "ACME", "tot', False, 0.0),
    (Check("json_schema", {"schema": {"type": "array"}}), case(), "[1, 2]", True, 1.0),
    (Check("numeric"), case("42"), "The answer is 42.", True, 1.0),
    (Check("numeric"), case("42"), "The answer is 43.", False, 0.0),
    (Check("numeric", {"tolerance": 0.001}), case("3.14159"), "about 3.14", False, 0.0),
    (Check("numeric", {"tolerance": 0.001}), case("3.14159"), "about 3.142", True, 1.0),
    (Check("numeric", {"relative": 0.05}), case("1,000"), "roughly 1,040 units", True, 1.0),
    (Check("numeric", {"relative": 0.05}), case("1,000"), "roughly 1,060 units", False, 0.0),
    (Check("numeric", {"value": 7}), case(), "no number here", False, 0.0),
]


@pytest.mark.parametrize(("check", "golden", "answer", "passes", "score"), TABLE)
async def test_deterministic_evaluators(
    check: Check, golden: GoldenCase, answer: str, passes: bool, score: float
) -> None:
    verdict = await judge(check, golden, answer)
    assert verdict.passed is passes
    assert verdict.score == pytest.approx(score)
    assert verdict.reason  # every verdict says why


async def test_failure_reasons_are_specific() -> None:
    schema_fail = await judge(Check("json_schema"), case(schema=SCHEMA), '{"vendor": "ACME", "total": "x"}')
    assert "schema violation at total" in schema_fail.reason
    broken = await judge(Check("json_schema"), case(schema=SCHEMA), "{oops")
    assert broken.reason.startswith("not valid JSON")
    wrong = await judge(Check("exact"), case("Paris"), "Lyon")
    assert wrong.reason == "expected 'Paris', got 'Lyon'"


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (Check("regex"), "needs 'pattern'"),
        (Check("regex", {"pattern": "("}), "not a valid regular expression"),
        (Check("json_schema", {"schema": {"type": "nonsense"}}), "not a valid JSON Schema"),
        (Check("numeric", {"tolerance": -1}), ">= 0"),
        (Check("contains", {"values": "red"}), "'values' must be list"),
        (Check("levenshtein"), "unknown check type"),
    ],
)
def test_bad_check_parameters_fail_when_built(check: Check, message: str) -> None:
    with pytest.raises(CheckError, match=message):
        build_deterministic(check)


def test_last_number() -> None:
    assert last_number("from 3 to -4.5e2 items") == -450.0
    assert last_number("total 12,345.60 USD") == 12345.6
    assert last_number("none") is None


@pytest.mark.parametrize(
    ("reply", "passes", "error"),
    [
        ('{"score": 0.9, "reason": "good"}', True, False),
        ('Here you go: {"score": 0.3, "reason": "vague"}', False, False),
        ('{"score": 1.5}', False, True),  # out of range: an error, not a 0
        ("I think it is fine", False, True),
        ('{"score": true}', False, True),
    ],
)
def test_judge_replies(reply: str, passes: bool, error: bool) -> None:
    verdict = parse_judgement(reply, threshold=0.5)
    assert verdict.passed is passes and (verdict.error is not None) is error


@pytest.mark.slow
async def test_similarity_with_the_in_process_embedding_model() -> None:
    evaluator = SimilarityEvaluator({"threshold": 0.7})
    golden = case("The invoice total is twelve dollars and fifty cents.")
    close = await evaluator.evaluate(golden, "The total on the invoice is $12.50.")
    far = await evaluator.evaluate(golden, "Penguins live in the southern hemisphere.")
    assert close.passed and close.score > 0.7
    assert not far.passed and far.score < 0.4
    assert "similarity" in far.reason
