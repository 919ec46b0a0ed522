"""Evaluators: each scores one answer against one case and says why.

A check in a golden set names its evaluator by ``type`` and gives its parameters; :func:`build_evaluator`
turns it into an object with one method, ``evaluate(case, output) -> Verdict``. Parameters are checked when
the evaluator is built, before any model is called, so a typo never costs a run.

=============  ===========================================================================================
type           passes when (score in [0, 1])
=============  ===========================================================================================
exact          the answer equals ``expected`` (or one of ``any_of``), after trimming whitespace;
               ``ignore_case: true`` to compare case-insensitively
contains       the answer contains ``value`` (default ``expected``) or every one of ``values``; score is
               the share found; ``ignore_case: true`` to compare case-insensitively
regex          ``pattern`` matches somewhere in the answer (Python ``re.search``; ``flags: "i"``)
json_schema    the answer is JSON that satisfies ``schema`` (default: the case's ``schema``)
numeric        the last number in the answer is within ``tolerance`` (absolute) or ``relative``
               (fraction) of ``value`` (default ``expected``)
similarity     cosine similarity of the in-process embeddings of answer and ``expected`` is at least
               ``threshold`` (default 0.8); score is the similarity (see model_evaluators.py)
judge          a gateway model grades the answer against ``rubric``; passes at ``threshold`` (default 0.5)
=============  ===========================================================================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema
import orjson

from modelyard.evals.golden import Check, GoldenCase


@dataclass(frozen=True, slots=True)
class Verdict:
    """One evaluator's judgement of one answer, or why none could be given.

    ``error`` is set when the evaluator itself failed (a judge call that failed, a judge reply that cannot
    be read): the answer was not graded, so ``score`` means nothing and must never be averaged as a 0.
    """

    score: float
    passed: bool
    reason: str
    error: str | None = None


class Evaluator(Protocol):
    name: str

    async def evaluate(self, case: GoldenCase, output: str) -> Verdict: ...


class CheckError(ValueError):
    """A check's parameters are wrong; the message says which and what is allowed."""


def check_param(
    params: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    value = params.get(key, default)
    if value is not None and not isinstance(value, kind):
        raise CheckError(f"'{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def check_fraction(params: Mapping[str, Any], key: str, default: float) -> float:
    """A parameter that must be a number from 0 to 1 (a threshold on a 0–1 score)."""
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise CheckError(f"'{key}' must be a number from 0 to 1, got {value!r}")
    return float(value)


def reference_text(case: GoldenCase, value: Any, name: str) -> str:
    text = case.expected if value is None else value
    if text is None:
        raise CheckError(f"{name} needs 'expected' in the case or 'value' in the check")
    return str(text)


def _short(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


class ExactMatch:
    name = "exact"

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.any_of: list[str] | None = check_param(params, "any_of", list)
        self.ignore_case: bool = check_param(params, "ignore_case", bool, False)

    def _norm(self, text: str) -> str:
        text = text.strip()
        return text.casefold() if self.ignore_case else text

    async def evaluate(self, case: GoldenCase, output: str) -> Verdict:
        accepted = self.any_of or [reference_text(case, None, "exact")]
        if self._norm(output) in {self._norm(a) for a in accepted}:
            return Verdict(1.0, True, "exact match")
        return Verdict(0.0, False, f"expected {_short(accepted[0])!r}, got {_short(output)!r}")


class Contains:
    name = "contains"

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.values: list[str] | None = check_param(params, "values", list)
        self.value: str | None = check_param(params, "value", str)
        self.ignore_case: bool = check_param(params, "ignore_case", bool, False)

    async def evaluate(self, case: GoldenCase, output: str) -> Verdict:
        needles = self.values or [reference_text(case, self.value, "contains")]
        haystack = output.casefold() if self.ignore_case else output
        missing = [n for n in needles if (n.casefold() if self.ignore_case else n) not in haystack]
        score = 1 - len(missing) / len(needles)
        if not missing:
            return Verdict(1.0, True, "contains every expected text")
        return Verdict(score, False, f"missing {', '.join(repr(_short(m, 30)) for m in missing)}")


class Regex:
    name = "regex"

    def __init__(self, params: Mapping[str, Any]) -> None:
        pattern = check_param(params, "pattern", str)
        if pattern is None:
            raise CheckError("regex needs 'pattern'")
        flags = re.IGNORECASE if "i" in (check_param(params, "flags", str, "") or "") else 0
        try:
            self.pattern = re.compile(pattern, flags)
        except re.error as exc:
            raise CheckError(f"'pattern' is not a valid regular expression: {exc}") from None

    async def evaluate(self, case: GoldenCase, output: str) -> Verdict:
        if self.pattern.search(output):
            return Verdict(1.0, True, f"matches /{self.pattern.pattern}/")
        return Verdict(0.0, False, f"no match for /{self.pattern.pattern}/ in {_short(output)!r}")


class JsonSchemaValid:
    name = "json_schema"

    def __init__(self, params: Mapping[str, Any]) -> None:
        schema = check_param(params, "schema", dict)
        if schema is not None:
            _check_schema(schema)
        self.schema: dict[str, Any] | None = schema

    async def evaluate(self, case: GoldenCase, output: str) -> Verdict:
        # ``{}`` is a real schema (any JSON document): only a missing one falls back to the case's.
        schema = self.schema if self.schema is not None else case.json_schema
        if schema is None:
            raise CheckError("json_schema needs 'schema' in the case or in the check")
        try:
            document = orjson.loads(output)
        except orjson.JSONDecodeError as exc:
            return Verdict(0.0, False, f"not valid JSON: {exc}")
        error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(document))
        if error is None:
            return Verdict(1.0, True, "valid JSON matching the schema")
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Verdict(0.0, False, f"schema violation at {where}: {_short(error.message, 100)}")


def _check_schema(schema: dict[str, Any]) -> None:
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise CheckError(f"'schema' is not a valid JSON Schema: {exc.message}") from None


_VALIDATORS: dict[str, Any] = {}


def _validator(schema: dict[str, Any]) -> Any:
    # Building a validator walks the schema; one per distinct schema keeps per-case overhead small.
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()
    found = _VALIDATORS.get(key)
    if found is None:
        _check_schema(schema)
        found = _VALIDATORS[key] = jsonschema.validators.validator_for(schema)(schema)
    return found


_NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (thousands separators allowed), or None."""
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


class NumericTolerance:
    name = "numeric"

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.value: float | None = check_param(params, "value", (int, float))
        self.tolerance: float = check_param(params, "tolerance", (int, float), 0)
        self.relative: float | None = check_param(params, "relative", (int, float))
        if self.tolerance < 0 or (self.relative is not None and self.relative < 0):
            raise CheckError("'tolerance' and 'relative' must be >= 0")

    async def evaluate(self, case: GoldenCase, output: str) -> Verdict:
        target = self.value if self.value is not None else last_number(reference_text(case, None, "numeric"))
        if target is None:
            raise CheckError(f"numeric: 'expected' of case {case.id!r} holds no number")
        got = last_number(output)
        if got is None:
            return Verdict(0.0, False, f"no number in {_short(output)!r}")
        allowed = max(self.tolerance, abs(target) * self.relative if self.relative is not None else 0)
        error = abs(got - target)
        if error <= allowed or math.isclose(error, allowed):
            return Verdict(1.0, True, f"{got:g} within {allowed:g} of {target:g}")
        return Verdict(0.0, False, f"{got:g} is {error:g} from {target:g} (allowed {allowed:g})")


#: type → constructor for the evaluators that need no model. Model-based ones are in model_evaluators.py.
DETERMINISTIC: dict[str, Callable[[Mapping[str, Any]], Evaluator]] = {
    "exact": ExactMatch,
    "contains": Contains,
    "regex": Regex,
    "json_schema": JsonSchemaValid,
    "numeric": NumericTolerance,
}


def build_deterministic(check: Check) -> Evaluator:
    """The evaluator for a check that needs no model; raises :class:`CheckError` on bad parameters."""
    factory = DETERMINISTIC.get(check.type)
    if factory is None:
        raise CheckError(f"unknown check type {check.type!r}")
    return factory(check.params)
