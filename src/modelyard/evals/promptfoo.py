"""Import promptfoo test suites as golden sets.

promptfoo (promptfoo.dev) describes a test as ``vars`` rendered into each prompt (Nunjucks templates), plus
``assert`` entries. This reads a promptfoo config (``prompts``, ``tests``, ``defaultTest``) or a bare tests
file (YAML, JSON, JSONL or CSV), follows its ``file://`` references and ``$ref`` pointers
(promptfoo_sources.py, promptfoo_yaml.py: YAML read as promptfoo reads it, so ``Yes`` stays "Yes"),
builds each test's cases (promptfoo_cases.py): every (prompt, test) rendered into chat messages with Jinja2,
the syntax Nunjucks shares (promptfoo_render.py), and the assertions mapped to our checks
(promptfoo_asserts.py). This module reads the config's top level and assembles the import.

Case ids are ``test-N`` (N the test's position from 1); a test whose list-valued vars expand into several
(as promptfoo expands them) gives ``test-N.K``; with several prompts each case id ends in ``@LABEL``.

Everything that cannot be imported with its meaning is refused, every problem at once, as ``file:line:
field: why``; ``skip_unsupported`` imports the rest and lists what was skipped. Keys that do not change the
cases (``providers``, ``outputPath``, a grading ``provider``) are dropped and counted in the summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.evals.golden import GoldenCase, GoldenSetError
from modelyard.evals.promptfoo_asserts import SUPPORTED, Problem
from modelyard.evals.promptfoo_cases import Report, Summary, cases_of, key_problems
from modelyard.evals.promptfoo_sources import (
    Origin,
    Prompt,
    RawTest,
    file_ref,
    load_prompts,
    load_tests,
    tests_file,
)
from modelyard.evals.promptfoo_yaml import load_yaml

__all__ = ["PromptfooImport", "Summary", "convert_promptfoo", "import_promptfoo"]

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
    for problem in key_problems(default, "defaultTest", summary):
        report(default_origin, problem)  # once, not once per test
    cases: list[GoldenCase] = []
    for number, test in enumerate(tests, start=1):
        found_before = len(problems)
        try:
            built = cases_of(test, number, default, default_origin, prompts, base, workload, summary, report)
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
