"""One promptfoo test → golden cases: its keys checked (what cannot be imported with its meaning is
refused, what does not change the cases is dropped and counted), its defaultTest applied, its list-valued
vars expanded, its assertions mapped (promptfoo_asserts.py) and each (vars, prompt) rendered into a case
(promptfoo_render.py). The ids are described in promptfoo.py."""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.evals.golden import Check, GoldenCase, parse_case
from modelyard.evals.promptfoo_asserts import Problem, map_assertion
from modelyard.evals.promptfoo_render import chat_messages, render_at
from modelyard.evals.promptfoo_sources import Origin, Prompt, RawTest, load_var

#: Records a problem at its file and line; returns the formatted line.
Report = Callable[[Origin, Problem], str]

_TEST_KEYS = {"description", "vars", "assert", "metadata", "options"}
_TEST_DROPPED = {
    "providers": "the run's -m models are the candidates",
    "provider": "the run's -m models are the candidates",
}
_TEST_REFUSED = {
    "threshold": "a test passing on a weighted score: here every check must pass",
    "providerOutput": "a fixed output tests no candidate",
    "assertScoringFunction": "it runs code",
    "prompts": "tests limited to some prompts: import each prompt's tests with --prompt",
    "__unsupported": "CSV columns not supported",
}
_OPTIONS_DROPPED = {
    "provider": "the run's --judge grades",
    "disableConversationVar": "not used",
    "runSerially": "not used",
    "cache": "not used",
    "disableVarExpansion": "read: list vars are not expanded",
}
_OPTIONS_REFUSED = {
    "transform": "it changes the answer with code before the checks",
    "postprocess": "it changes the answer with code before the checks",
    "rubricPrompt": "a custom grading prompt: the judge uses its own",
    "storeOutputAs": "multi-turn chains are not supported",
}


@dataclass
class Summary:
    """What the import did: tests read, assertions mapped, keys dropped, tests skipped, notes."""

    tests: int = 0
    prompts: int = 0
    mapped: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self, cases: int) -> list[str]:
        out = [f"{self.tests} tests x {self.prompts} prompt(s) -> {cases} cases"]
        if self.mapped:
            out.append("mapped: " + ", ".join(f"{k} x{n}" for k, n in sorted(self.mapped.items())))
        if self.dropped:
            out.append("dropped: " + "; ".join(f"{k} x{n}" for k, n in sorted(self.dropped.items())))
        out += [f"skipped: {s}" for s in self.skipped]
        out += [f"note: {n}" for n in dict.fromkeys(self.notes)]
        return out


def key_problems(data: dict[str, Any], where: str, summary: Summary) -> list[Problem]:
    """Every key of a test (or defaultTest) that cannot be imported; dropped keys are counted."""
    problems = []
    for key in data:
        if key in _TEST_REFUSED:
            problems.append(Problem(f"{where}.{key}", f"not supported: {_TEST_REFUSED[key]}"))
        elif key in _TEST_DROPPED:
            summary.dropped[f"{key} ({_TEST_DROPPED[key]})"] += 1
        elif key not in _TEST_KEYS:
            read = ", ".join(sorted(_TEST_KEYS))
            problems.append(Problem(f"{where}.{key}", f"not supported (test keys read: {read})"))
    options = data.get("options") or {}
    if not isinstance(options, dict):
        return [*problems, Problem(f"{where}.options", "must be a mapping")]
    for key in options:
        if key in _OPTIONS_REFUSED:
            problems.append(Problem(f"{where}.options.{key}", f"not supported: {_OPTIONS_REFUSED[key]}"))
        elif key in _OPTIONS_DROPPED:
            summary.dropped[f"options.{key} ({_OPTIONS_DROPPED[key]})"] += 1
        elif key not in ("prefix", "suffix"):
            read = "prefix, suffix, provider"
            problems.append(Problem(f"{where}.options.{key}", f"not supported (options read: {read})"))
    if not isinstance(data.get("vars") or {}, dict):
        problems.append(Problem(f"{where}.vars", "must be a mapping of variable names to values"))
    if not isinstance(data.get("assert") or [], list):
        problems.append(Problem(f"{where}.assert", "must be a list of assertions"))
    return problems


@dataclass
class _Test:
    """One test with its defaultTest applied, and where to report each part's problems."""

    raw: RawTest
    default: dict[str, Any]
    default_origin: Origin
    report: Report
    found: int = 0

    def problem(self, problem: Problem, in_default: bool = False) -> None:
        self.report(self.default_origin if in_default else self.raw.origin, problem)
        self.found += 1

    def failed(self) -> bool:
        return self.found > 0


def cases_of(
    test: RawTest,
    number: int,
    default: dict[str, Any],
    default_origin: Origin,
    prompts: list[Prompt],
    base: Path,
    workload: str | None,
    summary: Summary,
    report: Report,
) -> list[GoldenCase]:
    """The cases of one test: one per (expanded vars, prompt). Every problem of the test is reported (a
    defaultTest problem at defaultTest's own line, once); a test with any gives no case."""
    where, data = test.where, test.data
    if isinstance(data, dict) and "$ref_error" in data:
        raise Problem(where, str(data["$ref_error"]))
    if not isinstance(data, dict):
        raise Problem(where, "a test must be a mapping with 'vars' and 'assert'")
    state = _Test(test, default, default_origin, report)
    for problem in key_problems(data, where, summary):
        state.problem(problem)
    if state.failed():
        return []
    options = {**(default.get("options") or {}), **(data.get("options") or {})}
    variables: dict[str, Any] = {}
    for name, value in {**(default.get("vars") or {}), **(data.get("vars") or {})}.items():
        try:
            variables[name] = load_var(value, base, f"{where}.vars.{name}")
        except Problem as problem:
            state.problem(problem)
    own = list(data.get("assert") or [])
    tags = _tags(default.get("metadata")) + _tags(data.get("metadata"))
    if isinstance(data.get("description"), str) and data["description"]:
        tags.append(f"description:{data['description']}")
    expansions = _expand(variables, bool(options.get("disableVarExpansion")))
    cases = []
    for k, values in enumerate(expansions, start=1):
        checks, expected = [], None
        for index, raw in enumerate([*own, *(default.get("assert") or [])]):
            in_default = index >= len(own)
            at = f"defaultTest.assert[{index - len(own)}]" if in_default else f"{where}.assert[{index}]"
            try:
                check = map_assertion(raw, at, functools.partial(render_at, values))
            except Problem as problem:
                state.problem(problem, in_default)
                continue
            checks.append(check)
            if k == 1:
                summary.mapped[f"{raw['type']}->{check.type}"] += 1
            if isinstance(raw.get("metric"), str):
                tags.append(f"metric:{raw['metric']}")
            if raw["type"] == "equals" and expected is None:
                expected = check.params["any_of"][0]
        if state.failed():
            return []
        if not checks:
            raise Problem(where, "no assertions: a golden case needs at least one check")
        for p in prompts:
            cases.append(_case(p, number, k, len(expansions), len(prompts), checks, expected, tags, options,
                               values, workload, where, summary))  # fmt: skip
    return cases


def _case(
    p: Prompt, number: int, k: int, expansions: int, prompts: int, checks: list[Check], expected: str | None,
    tags: list[str], options: dict[str, Any], values: dict[str, Any], workload: str | None, where: str,
    summary: Summary,
) -> GoldenCase:  # fmt: skip
    suffix = (f".{k}" if expansions > 1 else "") + (f"@{p.label}" if prompts > 1 else "")
    raw_case: dict[str, Any] = {
        "id": f"test-{number}{suffix}",
        "messages": chat_messages(p, options, values, f"{where}.vars", summary.notes),
        "checks": [{"type": c.type, **c.params} for c in checks],
        "tags": list(dict.fromkeys(tags + ([f"prompt:{p.label}"] if prompts > 1 else []))),
    }
    if expected is not None:
        raw_case["expected"] = expected
    if workload is not None:
        raw_case["workload"] = workload
    try:
        return parse_case(raw_case)
    except ValueError as exc:
        raise Problem(where, str(exc)) from None


def _expand(variables: dict[str, Any], disabled: bool) -> list[dict[str, Any]]:
    """promptfoo runs a test once per combination of its list-valued vars."""
    lists = [k for k, v in variables.items() if isinstance(v, list)] if not disabled else []
    if not lists:
        return [variables]
    return [{**variables, **dict(zip(lists, combo, strict=True))}
            for combo in itertools.product(*(variables[k] for k in lists))]  # fmt: skip


def _tags(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict):
        return []
    return [f"{k}:{v}" for k, v in metadata.items() if isinstance(v, str | int | float | bool)]
