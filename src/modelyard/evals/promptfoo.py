"""Import promptfoo test cases as a golden set.

promptfoo (promptfoo.dev) describes a test as ``vars`` substituted into a prompt template, plus a list of
``assert`` entries (``type``, ``value``, optional ``threshold``). This reads either a promptfoo config
(a mapping with ``prompts``, ``tests`` and optionally ``defaultTest``) or a bare list of tests (the file a
config's ``tests: file://...`` points at), renders each test's prompt into chat messages, and maps its
assertions to our checks:

=====================================  ===================================================================
promptfoo assertion                    check
=====================================  ===================================================================
``equals``                             ``exact`` (after trimming whitespace)
``contains`` / ``icontains``           ``contains`` (``ignore_case`` for the ``i`` form)
``contains-all`` / ``icontains-all``   ``contains`` with ``values``
``contains-any`` / ``icontains-any``   ``regex``: an alternation of the escaped values
``starts-with``                        ``regex`` anchored at the start
``regex``                              ``regex`` (Python ``re`` syntax)
``is-json``                            ``json_schema`` (``value`` as the schema; none: any JSON)
``similar``                            ``similarity`` (``threshold`` carried over)
``llm-rubric``                         ``judge`` with ``value`` as the rubric (run with ``--judge``)
=====================================  ===================================================================

Anything else (``javascript``, ``python``, negated ``not-`` forms, ``transform``, per-assertion providers,
``file://`` references, template logic beyond ``{{ var }}``) is refused with its file line and field
path, all problems at once, rather than imported with a different meaning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import yaml

from modelyard.evals.evaluators import CheckError, build_deterministic
from modelyard.evals.golden import Check, GoldenCase, GoldenSetError, parse_case

_VAR = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_TEMPLATE_LOGIC = re.compile(r"\{\{|\{%|\{#")
_TEST_KEYS = {"description", "vars", "assert", "metadata"}
_ASSERT_KEYS = {"type", "value", "threshold", "metric", "weight"}
SUPPORTED = (
    "equals", "contains", "icontains", "contains-all", "icontains-all", "contains-any", "icontains-any",
    "starts-with", "regex", "is-json", "similar", "llm-rubric",
)  # fmt: skip


class _Problem(ValueError):
    """One thing wrong in the file, found at ``where`` (a field path such as ``tests[2].assert[0].type``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


def import_promptfoo(
    path: str | Path, prompt: str | None = None, workload: str | None = None
) -> list[GoldenCase]:
    """Golden cases from a promptfoo config or tests file; ``prompt`` overrides the file's ``prompts``.

    Case ids are ``test-N``, N the test's position (from 1). Raises :class:`GoldenSetError` listing every
    problem as ``file:line: field: what is wrong``.
    """
    path = Path(path)
    data, root = _load(path)
    tests, tests_path, default = _tests_of(data, path)
    template = prompt if prompt is not None else _prompt_of(data, path)
    cases, problems = [], []
    for index, test in enumerate(tests):
        where = f"{tests_path}[{index}]"
        try:
            cases.append(_case(test, default, template, index, where, workload))
        except _Problem as problem:
            problems.append(f"{path}:{_line(root, problem.where)}: {problem.where}: {problem}")
    if problems:
        raise GoldenSetError(f"{len(problems)} problem(s) in {path}:\n  " + "\n  ".join(problems))
    if not cases:
        raise GoldenSetError(f"{path}: no tests to import")
    return cases


def _load(path: Path) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree (the nodes carry the line numbers the errors cite)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GoldenSetError(f"cannot read {path}: {exc.strerror}") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as exc:
        raise GoldenSetError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _tests_of(data: Any, path: Path) -> tuple[list[Any], str, dict[str, Any]]:
    if isinstance(data, list):
        return data, "", {}
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise GoldenSetError(
            f"{path}: expected a promptfoo config with a 'tests' list, or a list of tests"
            + ("; 'tests' as a file:// or CSV reference is not supported: import that file"
               if isinstance(data, dict) and isinstance(data.get("tests"), str) else "")
        )  # fmt: skip
    default = data.get("defaultTest") or {}
    if not isinstance(default, dict) or set(default) - {"vars", "assert"}:
        raise GoldenSetError(f"{path}: defaultTest: only 'vars' and 'assert' are supported")
    return data["tests"], "tests", default


def _prompt_of(data: Any, path: Path) -> str:
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if isinstance(prompts, str):
        prompts = [prompts]
    inline = [p.get("raw") if isinstance(p, dict) else p for p in prompts or ()]
    if len(inline) == 1 and isinstance(inline[0], str) and not inline[0].startswith("file://"):
        return inline[0]
    found = "no inline prompt" if not inline else f"{len(inline)} prompt(s), not one inline template"
    raise GoldenSetError(f"{path}: {found}; pass the template with --prompt '...{{{{var}}}}...'")


def _case(
    test: Any, default: dict[str, Any], template: str, index: int, where: str, workload: str | None
) -> GoldenCase:
    if not isinstance(test, dict):
        raise _Problem(where, "a test must be a mapping with 'vars' and 'assert'")
    for key in test:
        if key not in _TEST_KEYS:
            raise _Problem(f"{where}.{key}", f"not supported (supported: {', '.join(sorted(_TEST_KEYS))})")
    if not isinstance(test.get("vars") or {}, dict):
        raise _Problem(f"{where}.vars", "must be a mapping of variable names to values")
    variables = {**(default.get("vars") or {}), **(test.get("vars") or {})}
    asserts = [*(test.get("assert") or []), *(default.get("assert") or [])]
    own = len(test.get("assert") or [])
    checks: list[Check] = []
    expected: str | None = None
    for number, raw in enumerate(asserts):
        at = f"{where}.assert[{number}]" if number < own else f"defaultTest.assert[{number - own}]"
        check = _check(raw, variables, at)
        checks.append(check)
        if raw["type"] == "equals" and expected is None:
            expected = check.params["any_of"][0]
    if not checks:
        raise _Problem(where, "no assertions: a golden case needs at least one check")
    raw_case: dict[str, Any] = {
        "id": f"test-{index + 1}",
        "messages": _messages(template, variables, f"{where}.vars"),
        "checks": [{"type": c.type, **c.params} for c in checks],
        "tags": _tags(test.get("metadata")),
    }
    if expected is not None:
        raw_case["expected"] = expected
    if workload is not None:
        raw_case["workload"] = workload
    try:
        return parse_case(raw_case)
    except ValueError as exc:
        raise _Problem(where, str(exc)) from None


def _tags(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict):
        return []
    return [f"{k}:{v}" for k, v in metadata.items() if isinstance(v, str | int | float | bool)]


def _render(text: str, variables: dict[str, Any], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise _Problem(where, f"the template uses {{{{{name}}}}}, which this test does not set")
        found = variables[name]
        if isinstance(found, str) and found.startswith("file://"):
            raise _Problem(f"{where}.{name}", "file:// variables are not supported: inline the text")
        if isinstance(found, list):
            # promptfoo expands a list into one test per value; a golden case is one prompt.
            raise _Problem(
                f"{where}.{name}", "list values (one test per value) are not supported: write the tests"
            )
        return found if isinstance(found, str) else orjson.dumps(found).decode()

    rendered = _VAR.sub(value, text)
    if _TEMPLATE_LOGIC.search(_VAR.sub("", text)):
        raise _Problem(where, "only {{ var }} substitution is supported (no filters, tags or comments)")
    return rendered


def _messages(template: str, variables: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """A chat template (a JSON list of messages) renders message by message; any other text is one user
    message."""
    try:
        chat = orjson.loads(template) if template.lstrip().startswith("[") else None
    except orjson.JSONDecodeError:
        chat = None
    if isinstance(chat, list) and all(isinstance(m, dict) and "role" in m for m in chat):
        return [
            {**m, "content": _render(m["content"], variables, where)}
            if isinstance(m.get("content"), str)
            else m
            for m in chat
        ]
    return [{"role": "user", "content": _render(template, variables, where)}]


def _check(raw: Any, variables: dict[str, Any], at: str) -> Check:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise _Problem(at, "an assertion needs a 'type'")
    for key in raw:
        if key not in _ASSERT_KEYS:
            raise _Problem(f"{at}.{key}", f"not supported (supported: {', '.join(sorted(_ASSERT_KEYS))})")
    kind = raw["type"]
    if kind not in SUPPORTED:
        hint = "negated assertions are not supported; " if kind.startswith("not-") else ""
        raise _Problem(f"{at}.type", f"{kind!r} is not supported; {hint}supported: {', '.join(SUPPORTED)}")
    if raw.get("weight", 1) != 1:
        raise _Problem(f"{at}.weight", "weights are not supported (every check counts the same)")
    value = raw.get("value")
    if isinstance(value, str):
        value = _render(value, variables, f"{at}.value")
    check = _map(kind, value, raw.get("threshold"), at)
    if check.type not in ("judge", "similarity"):
        try:
            build_deterministic(check)
        except CheckError as exc:
            raise _Problem(f"{at}.value", str(exc)) from None
    return check


def _text(value: Any, at: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Problem(f"{at}.value", "must be a text (or a number)")
    return str(value)


def _texts(value: Any, at: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _Problem(f"{at}.value", "must be a non-empty list of texts")
    return [_text(v, at) for v in value]


def _map(kind: str, value: Any, threshold: Any, at: str) -> Check:
    """One supported promptfoo assertion → our check (see the table in the module docstring)."""
    fold = {"ignore_case": True} if kind.startswith("i") and kind != "is-json" else {}
    if kind == "equals":
        return Check("exact", {"any_of": [_text(value, at)]})
    if kind in ("contains", "icontains"):
        return Check("contains", {"value": _text(value, at), **fold})
    if kind in ("contains-all", "icontains-all"):
        return Check("contains", {"values": _texts(value, at), **fold})
    if kind in ("contains-any", "icontains-any"):
        pattern = "|".join(re.escape(v) for v in _texts(value, at))
        return Check("regex", {"pattern": pattern, **({"flags": "i"} if fold else {})})
    if kind == "starts-with":
        return Check("regex", {"pattern": r"\A" + re.escape(_text(value, at))})
    if kind == "regex":
        return Check("regex", {"pattern": _text(value, at)})
    if kind == "is-json":
        return Check("json_schema", {"schema": _schema(value, at)})
    extra = {"threshold": threshold} if threshold is not None else {}
    if kind == "similar":
        return Check("similarity", {"value": _text(value, at), **extra})
    return Check("judge", {"rubric": _text(value, at), **extra})  # llm-rubric


def _schema(value: Any, at: str) -> dict[str, Any]:
    if value is None:
        return {}  # promptfoo's is-json without a value: any valid JSON
    if isinstance(value, str):
        if value.startswith("file://"):
            raise _Problem(f"{at}.value", "file:// schemas are not supported: inline the schema")
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise _Problem(f"{at}.value", "not a JSON Schema (neither YAML nor JSON)") from None
    if not isinstance(value, dict):
        raise _Problem(f"{at}.value", "a JSON Schema must be a mapping")
    return value


def _line(root: yaml.Node | None, where: str) -> int:
    """The 1-based line of the node at field path ``where`` (the nearest existing parent's line)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else 1)
    for step in re.findall(r"[^.\[\]]+|\[\d+\]", where):
        child = None
        if isinstance(node, yaml.SequenceNode) and step.startswith("["):
            items = node.value
            position = int(step[1:-1])
            child = items[position] if position < len(items) else None
        elif isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
