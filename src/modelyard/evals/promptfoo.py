"""Import promptfoo test suites as golden sets.

promptfoo (promptfoo.dev) describes a test as ``vars`` rendered into each prompt (Nunjucks templates), plus
``assert`` entries. This reads a promptfoo config (``prompts``, ``tests``, ``defaultTest``) or a bare tests
file (YAML, JSON, JSONL or CSV), follows its ``file://`` references and ``$ref`` pointers
(promptfoo_sources.py, promptfoo_yaml.py: YAML read as promptfoo reads it, so ``Yes`` stays "Yes"),
renders every (prompt, test) into chat messages with Jinja2 (the syntax Nunjucks shares) and maps the
assertions to our checks (promptfoo_asserts.py).

Case ids are ``test-N`` (N the test's position from 1); a test whose list-valued vars expand into several
(as promptfoo expands them) gives ``test-N.K``; with several prompts each case id ends in ``@LABEL``.

Everything that cannot be imported with its meaning is refused, every problem at once, as ``file:line:
field: why``; ``skip_unsupported`` imports the rest and lists what was skipped. Keys that do not change the
cases (``providers``, ``outputPath``, a grading ``provider``) are dropped and counted in the summary.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import orjson
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from modelyard.evals.golden import Check, GoldenCase, GoldenSetError, parse_case
from modelyard.evals.promptfoo_asserts import SUPPORTED, Problem, map_assertion
from modelyard.evals.promptfoo_sources import (
    Origin,
    Prompt,
    RawTest,
    file_ref,
    load_prompts,
    load_tests,
    load_var,
    tests_file,
)
from modelyard.evals.promptfoo_yaml import load_yaml

#: Records a problem at its file and line; returns the formatted line.
Report = Callable[[Origin, Problem], str]

#: Top-level keys that do not change the cases: dropped, and why.
_CONFIG_DROPPED = {
    "providers": "the candidates are the run's -m models",
    "targets": "the candidates are the run's -m models",
    "evaluateOptions": "the run has its own --concurrency, --timeout and --retries",
    "outputPath": "the run writes its record under --out",
    "sharing": "not used", "env": "not used", "tags": "not used", "metadata": "not used",
    "writeLatestResults": "not used", "commandLineOptions": "not used", "derivedMetrics": "not used",
    "description": "not used", "extensions": "not used", "nunjucksFilters": "not used",
    "assertionTemplates": "read through $ref",
}  # fmt: skip
_CONFIG_REFUSED = {
    "scenarios": "scenarios combine config and tests: write them out as tests",
    "redteam": "red-team generation is not an eval of fixed cases",
}
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


@dataclass
class PromptfooImport:
    cases: list[GoldenCase]
    summary: Summary


def import_promptfoo(
    path: str | Path, prompt: str | None = None, workload: str | None = None
) -> list[GoldenCase]:
    """The golden cases of a promptfoo config or tests file (see :func:`convert_promptfoo`)."""
    return convert_promptfoo(path, prompt, workload).cases


def convert_promptfoo(
    path: str | Path,
    prompt: str | None = None,
    workload: str | None = None,
    *,
    skip_unsupported: bool = False,
) -> PromptfooImport:
    """Convert ``path``; ``prompt`` (a template) replaces the file's prompts. Raises :class:`GoldenSetError`
    listing every problem as ``file:line: field: why``, all at once."""
    path = Path(path)
    base = path.parent
    summary = Summary()
    problems: dict[str, None] = {}  # ordered and de-duplicated: a defaultTest problem is listed once

    def report(origin: Origin, problem: Problem) -> str:
        text = f"{origin.path}:{origin.line(problem.where)}: {problem.where}: {problem}"
        problems[text] = None
        return text

    tests, default, default_origin, prompts = _read(path, prompt, summary, report)
    summary.tests, summary.prompts = len(tests), len(prompts)
    for problem in _key_problems(default, "defaultTest", summary):
        report(default_origin, problem)  # once, not once per test
    cases: list[GoldenCase] = []
    for number, test in enumerate(tests, start=1):
        found_before = len(problems)
        try:
            built = _cases_of(test, number, default, default_origin, prompts, base, workload, summary, report)
        except Problem as problem:
            report(test.origin, problem)
            built = []
        if len(problems) > found_before:
            if skip_unsupported:
                summary.skipped.append(f"test-{number}: {next(reversed(problems))}")
                for text in list(problems)[found_before:]:
                    del problems[text]
            continue
        cases += built
    if problems:
        listed = "\n  ".join(problems)
        hint = (
            f"\nsupported assertion types: {', '.join(SUPPORTED)}" if "is not supported (" in listed else ""
        )
        raise GoldenSetError(f"{len(problems)} problem(s) in {path}:\n  {listed}{hint}")
    if not cases:
        raise GoldenSetError(f"{path}: no tests to import")
    return PromptfooImport(cases, summary)


def _read(
    path: Path, prompt: str | None, summary: Summary, report: Report
) -> tuple[list[RawTest], dict[str, Any], Origin, list[Prompt]]:
    """The config's tests, defaultTest and prompts; problems that stop everything raise at once."""
    data, root = load_yaml(path) if path.suffix != ".csv" else (None, None)
    origin = Origin(path, root)
    fatal: list[str] = []

    def fail(where: str, message: str) -> None:
        fatal.append(report(origin, Problem(where, message)))

    if path.suffix in (".csv", ".jsonl") or isinstance(data, list):
        tests, default, default_origin = tests_file(path), dict[str, Any](), origin
        config: dict[str, Any] = {}
    elif isinstance(data, dict) and "tests" in data:
        config = data
        tests, reading = load_tests(data["tests"], path.parent, origin, "tests")
        for problem in reading:
            fatal.append(report(origin, problem))
        default, default_origin = _default_test(data.get("defaultTest"), path.parent, origin, fail)
    else:
        raise GoldenSetError(f"{path}: expected a promptfoo config with 'tests', or a list of tests")
    for key in config:
        if key in _CONFIG_REFUSED:
            fail(key, f"not supported: {_CONFIG_REFUSED[key]}")
        elif key not in ("prompts", "tests", "defaultTest"):
            summary.dropped[f"{key} ({_CONFIG_DROPPED.get(key, 'not read by the import')})"] += 1
    prompts: list[Prompt] = []
    if prompt is not None:
        prompts = [Prompt("prompt", prompt)]
    elif "prompts" not in config:
        fail("prompts", "no prompts; pass the template with --prompt '...{{var}}...'")
    else:
        try:
            prompts = load_prompts(config["prompts"], path.parent)
        except Problem as problem:
            fatal.append(report(origin, problem))
    if fatal:
        raise GoldenSetError(f"{len(fatal)} problem(s) in {path}:\n  " + "\n  ".join(dict.fromkeys(fatal)))
    return tests, default, default_origin, prompts


def _default_test(
    value: Any, base: Path, origin: Origin, fail: Callable[[str, str], None]
) -> tuple[dict[str, Any], Origin]:
    ref = file_ref(value)
    if ref is not None:
        path = base / ref
        data, root = load_yaml(path)
        value, origin = data, Origin(path, root)
    if value is None:
        return {}, origin
    if not isinstance(value, dict):
        fail("defaultTest", "must be a mapping (vars, assert, options)")
        return {}, origin
    return value, origin


class _JsonDict(dict[str, Any]):
    """A var holding an object: ``{{ obj.key }}`` reads it, ``{{ obj }}`` writes it as JSON."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


class _JsonList(list[Any]):
    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


def _template_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _JsonDict({k: _template_value(v) for k, v in value.items()})
    if isinstance(value, list):
        return _JsonList(_template_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # as JavaScript writes it: 1.0 is "1"
    return value


_ENV = SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False, keep_trailing_newline=True)
_ENV.filters["dump"] = lambda value, indent=None: json.dumps(value, indent=indent, ensure_ascii=False)


@lru_cache(maxsize=512)
def _template(text: str) -> tuple[jinja2.Template, frozenset[str]]:
    return _ENV.from_string(text), frozenset(meta.find_undeclared_variables(_ENV.parse(text)))


def _render_at(variables: dict[str, Any], text: str, where: str) -> str:
    return render(text, variables, where)


def render(text: str, variables: dict[str, Any], where: str, notes: list[str] | None = None) -> str:
    """Render a Nunjucks/Jinja template; an unset variable renders empty, as in promptfoo (noted)."""
    try:
        template, names = _template(text)
        missing = sorted(names - set(variables))
        if missing and notes is not None:
            notes.append(f"{where}: {', '.join(missing)} not set: rendered empty, as promptfoo does")
        return str(template.render(**{k: _template_value(v) for k, v in variables.items()}))
    except jinja2.TemplateError as exc:
        raise Problem(where, f"template: {exc}") from None


def _key_problems(data: dict[str, Any], where: str, summary: Summary) -> list[Problem]:
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


def _cases_of(
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
    for problem in _key_problems(data, where, summary):
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
                check = map_assertion(raw, at, functools.partial(_render_at, values))
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
        "messages": _messages(p, options, values, f"{where}.vars", summary.notes),
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


def _messages(
    prompt: Prompt, options: dict[str, Any], variables: dict[str, Any], where: str, notes: list[str]
) -> list[dict[str, Any]]:
    """A chat template (a JSON list of messages) renders message by message; any other text is one user
    message. ``options.prefix``/``suffix`` wrap the text prompt (or the last user message)."""
    prefix, suffix = str(options.get("prefix") or ""), str(options.get("suffix") or "")
    try:
        chat = orjson.loads(prompt.text) if prompt.text.lstrip().startswith("[") else None
    except orjson.JSONDecodeError:
        chat = None
    if isinstance(chat, list) and chat and all(isinstance(m, dict) and "role" in m for m in chat):
        last_user = max((i for i, m in enumerate(chat) if m.get("role") == "user"), default=-1)
        out = []
        for i, message in enumerate(chat):
            content = message.get("content")
            if isinstance(content, str):
                text = render(content, variables, where, notes)
                message = {**message, "content": prefix + text + suffix if i == last_user else text}
            out.append(message)
        return out
    return [{"role": "user", "content": prefix + render(prompt.text, variables, where, notes) + suffix}]
