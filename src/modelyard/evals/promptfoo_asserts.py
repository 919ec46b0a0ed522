"""promptfoo assertions → our checks, one table, every refusal saying why.

=======================================  ==============================================================
promptfoo assertion                      check
=======================================  ==============================================================
``equals``                               ``exact`` (after trimming whitespace)
``contains`` / ``icontains``             ``contains`` (``ignore_case`` for the ``i`` form)
``contains-all`` / ``icontains-all``     ``contains`` with ``values``
``contains-any`` / ``icontains-any``     ``regex``: an alternation of the escaped values
``starts-with``                          ``regex`` anchored at the start
``regex``                                ``regex`` (Python ``re`` syntax)
``not-contains`` / ``not-icontains``,    ``regex`` that matches only when the text (or pattern) is absent:
``not-contains-any``, ``not-regex``,     ``\\A(?![\\s\\S]*?(?:...))``
``not-starts-with``
``is-json``                              ``json_schema`` (``value`` as the schema; none: any JSON)
``similar``                              ``similarity`` (``threshold`` carried over, default 0.8)
``llm-rubric``                           ``judge`` with ``value`` as the rubric (``--judge`` grades it)
=======================================  ==============================================================

``metric`` names become case tags (``metric:NAME``); an assertion's grading ``provider`` is dropped (the
run's ``--judge`` grades). Code assertions (``javascript``, ``python``, ``webhook``), ``transform``,
``rubricPrompt``, ``weight`` other than 1 and the other types have no meaning here: they are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from modelyard.evals.evaluators import CheckError, build_deterministic
from modelyard.evals.golden import Check
from modelyard.evals.promptfoo_yaml import Yaml12Loader

SUPPORTED = (
    "equals", "contains", "icontains", "contains-all", "icontains-all", "contains-any", "icontains-any",
    "starts-with", "regex", "is-json", "similar", "llm-rubric", "not-contains", "not-icontains",
    "not-contains-any", "not-icontains-any", "not-regex", "not-starts-with",
)  # fmt: skip
#: Assertion keys read here; "provider" is read and dropped (reported in the import summary).
ASSERT_KEYS = {"type", "value", "threshold", "metric", "weight", "provider"}
_WHY_NOT = {
    "javascript": "it runs JavaScript",
    "python": "it runs Python",
    "webhook": "it calls a web hook",
    "assert-set": "nested assertion sets are not supported: list the assertions",
    "cost": "cost is measured per candidate in the run record, not asserted per case",
    "latency": "latency is measured per candidate in the run record, not asserted per case",
}
#: ``similar`` without a threshold in promptfoo (its DEFAULT_SEMANTIC_SIMILARITY_THRESHOLD).
SIMILAR_THRESHOLD = 0.8

Render = Callable[[str, str], str]


class Problem(ValueError):
    """One thing wrong in the source, found at ``where`` (a field path such as ``tests[2].assert[0]``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


_SHORTHAND = re.compile(r"^(not-)?([a-z][a-z-]*)(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")
_LIST_TYPES = {"contains-all", "contains-any", "icontains-all", "icontains-any"}


def assertion_from_string(text: str) -> dict[str, Any]:
    """A CSV ``__expected`` cell → an assertion, by promptfoo's rules: ``type:value``, ``type(0.9):value``,
    ``grade:``/``llm-rubric:`` rubrics, ``javascript:``/``fn:``/``python:`` code, anything else ``equals``.
    The value's leading spaces are dropped (``contains: Hello`` looks for "Hello")."""
    for prefix, kind in (("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric"), ("javascript:", "javascript"),
                         ("fn:", "javascript"), ("eval:", "javascript"), ("python:", "python")):  # fmt: skip
        if text.startswith(prefix):
            return {"type": kind, "value": text[len(prefix) :].strip()}
    match = _SHORTHAND.match(text)
    if match is None or (match.group(2) not in SUPPORTED and match.group(2) not in _WHY_NOT):
        return {"type": "equals", "value": text}
    negated, kind, threshold, value = match.groups()
    value = (value or "").lstrip()
    raw: dict[str, Any] = {"type": f"{negated or ''}{kind}"}
    raw["value"] = [v.strip() for v in value.split(",")] if kind in _LIST_TYPES else value
    if threshold is not None:
        raw["threshold"] = float(threshold)
    if kind == "is-json" and not value:
        del raw["value"]
    return raw


def map_assertion(raw: Any, at: str, render: Render) -> Check:
    """One promptfoo assertion → our check; raises :class:`Problem` naming the field and why not."""
    if isinstance(raw, dict) and "$ref_error" in raw:
        raise Problem(at, str(raw["$ref_error"]))
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise Problem(at, "an assertion needs a 'type'")
    unknown = sorted(set(raw) - ASSERT_KEYS)
    if unknown:
        raise Problem(
            f"{at}.{unknown[0]}", f"not supported (assertion keys read: {', '.join(sorted(ASSERT_KEYS))})"
        )
    kind = raw["type"]
    if kind not in SUPPORTED:
        why = _WHY_NOT.get(kind.removeprefix("not-"), "no check has its meaning")
        raise Problem(f"{at}.type", f"{kind!r} is not supported ({why})")
    if raw.get("weight", 1) != 1:
        raise Problem(f"{at}.weight", "weights are not supported (every check counts the same)")
    value = raw.get("value")
    if isinstance(value, str):
        if value.startswith("file://"):
            raise Problem(f"{at}.value", "file:// assertion values are not supported: inline the value")
        value = render(value, f"{at}.value")
    check = _map(kind, value, raw.get("threshold"), at)
    try:
        if check.type not in ("judge", "similarity"):
            build_deterministic(check)
    except CheckError as exc:
        raise Problem(f"{at}.value", str(exc)) from None
    return check


def _text(value: Any, at: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Problem(f"{at}.value", "must be a text (or a number)")
    return str(value)


def _texts(value: Any, at: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise Problem(f"{at}.value", "must be a non-empty list of texts")
    return [_text(v, at) for v in value]


def _absent(pattern: str) -> str:
    """A pattern that matches (at the start) only when ``pattern`` occurs nowhere in the text."""
    return r"\A(?![\s\S]*?(?:" + pattern + "))"


def _map(kind: str, value: Any, threshold: Any, at: str) -> Check:
    negated = kind.startswith("not-")
    base = kind.removeprefix("not-")
    fold = {"flags": "i"} if base.startswith("icontains") else {}
    if negated:
        if base in ("contains", "icontains"):
            pattern = re.escape(_text(value, at))
        elif base in ("contains-any", "icontains-any"):
            pattern = "|".join(re.escape(v) for v in _texts(value, at))
        elif base == "regex":
            pattern = _text(value, at)
        else:  # starts-with
            return Check("regex", {"pattern": r"\A(?!" + re.escape(_text(value, at)) + ")"})
        return Check("regex", {"pattern": _absent(pattern), **fold})
    ignore = {"ignore_case": True} if fold else {}
    if kind == "equals":
        return Check("exact", {"any_of": [_text(value, at)]})
    if kind in ("contains", "icontains"):
        return Check("contains", {"value": _text(value, at), **ignore})
    if kind in ("contains-all", "icontains-all"):
        return Check("contains", {"values": _texts(value, at), **ignore})
    if kind in ("contains-any", "icontains-any"):
        return Check("regex", {"pattern": "|".join(re.escape(v) for v in _texts(value, at)), **fold})
    if kind == "starts-with":
        return Check("regex", {"pattern": r"\A" + re.escape(_text(value, at))})
    if kind == "regex":
        return Check("regex", {"pattern": _text(value, at)})
    if kind == "is-json":
        return Check("json_schema", {"schema": _schema(value, at)})
    if kind == "similar":
        return Check("similarity", {"value": _text(value, at), "threshold": _threshold(threshold, at, 0.8)})
    extra = {"threshold": _threshold(threshold, at, None)} if threshold is not None else {}
    return Check("judge", {"rubric": _text(value, at), **extra})  # llm-rubric


def _threshold(value: Any, at: str, default: float | None) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise Problem(f"{at}.threshold", f"must be a number from 0 to 1, got {value!r}")
    return float(value)


def _schema(value: Any, at: str) -> dict[str, Any]:
    if value is None:
        return {}  # promptfoo's is-json without a value: any valid JSON
    if isinstance(value, str):
        try:
            value = yaml.load(value, Loader=Yaml12Loader)  # noqa: S506 (a safe loader)
        except yaml.YAMLError:
            raise Problem(f"{at}.value", "not a JSON Schema (neither YAML nor JSON)") from None
    if not isinstance(value, dict):
        raise Problem(f"{at}.value", "a JSON Schema must be a mapping")
    return value
