"""Where promptfoo's prompts, tests and vars come from: inline, or ``file://`` references (relative to the
config's folder, globs allowed), read without running anything.

- prompts: inline text, ``{raw, label}``/``{id: file://..., label}`` entries, and files: ``.txt`` (several
  prompts separated by a ``---`` line), ``.md``/``.j2``/other text, ``.json``/``.yaml`` chat messages;
  prompt functions (``.js``, ``.py``, ``file:...:function``) are refused: they run code.
- tests: an inline list whose items may be ``file://`` references, or one reference: ``.yaml``/``.yml``/
  ``.json`` (a list of tests), ``.jsonl`` (one test per line), ``.csv`` (a header of var names and
  promptfoo's special ``__`` columns, see :func:`csv_tests`).
- vars: a ``file://`` value is replaced by the file's text (``.json``/``.yaml``: its data).

Every item keeps its :class:`Origin` (file and line) so problems are reported as ``file:line``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from modelyard.evals.golden import GoldenSetError
from modelyard.evals.promptfoo_asserts import Problem, assertion_from_string
from modelyard.evals.promptfoo_yaml import load_yaml, node_line, read_text

_CODE = (".js", ".mjs", ".cjs", ".ts", ".py")
_DATA = (".json", ".yaml", ".yml")


@dataclass(frozen=True)
class Origin:
    """The file an item came from, and how to find a field's line in it."""

    path: Path
    root: yaml.Node | None = None
    #: For a row of a CSV or JSONL file: its line (every field of the row is on it).
    row_line: int | None = None

    def line(self, where: str) -> int:
        return self.row_line if self.row_line is not None else node_line(self.root, where)


@dataclass(frozen=True)
class RawTest:
    data: Any
    origin: Origin
    #: The test's field path inside its file (``tests[3]``, ``[3]``, or ``row 4`` of a CSV).
    where: str


@dataclass(frozen=True)
class Prompt:
    label: str
    text: str


def file_ref(value: Any) -> str | None:
    return value[len("file://") :] if isinstance(value, str) and value.startswith("file://") else None


def expand(base: Path, ref: str, where: str) -> list[Path]:
    """The files a reference names (a glob expands, sorted); a missing file is a problem."""
    if any(c in ref for c in "*?["):
        found = sorted(p for p in base.glob(ref) if p.is_file())
        if not found:
            raise Problem(where, f"file://{ref} matches no file")
        return found
    path = base / ref
    if not path.is_file():
        raise Problem(where, f"file://{ref}: no such file ({path})")
    return [path]


def load_prompts(value: Any, base: Path, where: str = "prompts") -> list[Prompt]:
    """promptfoo's ``prompts`` → labelled templates (text, or the JSON text of a chat message list)."""
    items = value if isinstance(value, list) else [value]
    prompts: list[Prompt] = []
    for index, item in enumerate(items):
        at = f"{where}[{index}]" if isinstance(value, list) else where
        label = None
        if isinstance(item, dict):
            label = item.get("label")
            item = item.get("raw", item.get("id"))
        ref = file_ref(item)
        if ref is not None:
            prompts += _prompt_files(base, ref, at, label)
        elif isinstance(item, str):
            prompts.append(Prompt(str(label or f"prompt-{len(prompts) + 1}"), item))
        else:
            raise Problem(at, "a prompt must be a text, a file:// reference or a {raw|id, label} mapping")
    return prompts


def runs_code(ref: str) -> bool:
    """A reference to a prompt or var function (``x.py``, ``x.js:render``): promptfoo would run it."""
    path = ref.rsplit(":", 1)[0] if ":" in ref else ref
    return path.endswith(_CODE) or ref.endswith(_CODE)


def _prompt_files(base: Path, ref: str, at: str, label: Any) -> list[Prompt]:
    if runs_code(ref):
        raise Problem(
            at, f"file://{ref}: prompt functions run code; not supported (render the prompts to text)"
        )
    prompts = []
    for path in expand(base, ref, at):
        name = str(label or path.name)
        if path.suffix in _DATA:
            data, _root = load_yaml(path)
            if isinstance(data, str):
                prompts.append(Prompt(name, data))
            elif isinstance(data, list) and all(isinstance(m, dict) and "role" in m for m in data):
                prompts.append(Prompt(name, orjson.dumps(data).decode()))
            else:
                raise Problem(at, f"{path.name}: expected chat messages (a list of {{role, content}})")
            continue
        text = read_text(path)
        parts = _split_prompts(text) if path.suffix == ".txt" else [text]
        for number, part in enumerate(parts, start=1):
            prompts.append(Prompt(name if len(parts) == 1 else f"{name}#{number}", part))
    return prompts


def _split_prompts(text: str) -> list[str]:
    """A .txt prompt file holds several prompts separated by a line of ``---``."""
    parts: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip() == "---":
            parts.append("\n".join(current).strip("\n"))
            current = []
        else:
            current.append(line)
    parts.append("\n".join(current).strip("\n"))
    return [p for p in parts if p.strip()]


def load_tests(value: Any, base: Path, origin: Origin, where: str) -> tuple[list[RawTest], list[Problem]]:
    """``tests`` → raw tests with their origins, and the problems found reading them (all of them)."""
    tests: list[RawTest] = []
    problems: list[Problem] = []
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        at = f"{where}[{index}]" if isinstance(value, list) else where
        ref = file_ref(item)
        if ref is None and isinstance(item, str):
            problems.append(
                Problem(at, f"{item!r}: tests from a URL, a dataset or a generator are not supported")
            )
        elif ref is None:
            tests.append(RawTest(item, origin, at))
        else:
            try:
                for path in expand(base, ref, at):
                    tests += tests_file(path)
            except Problem as problem:
                problems.append(problem)
    return tests, problems


def tests_file(path: Path) -> list[RawTest]:
    """The tests of one file, by its extension."""
    if path.suffix == ".csv":
        return csv_tests(path)
    if path.suffix == ".jsonl":
        tests: list[RawTest] = []
        for number, line in enumerate(read_text(path).splitlines(), start=1):
            if line.strip():
                try:
                    tests.append(RawTest(orjson.loads(line), Origin(path, row_line=number), f"line {number}"))
                except orjson.JSONDecodeError as exc:
                    raise GoldenSetError(f"{path}:{number}: not valid JSON ({exc})") from None
        return tests
    if path.suffix not in _DATA:
        raise GoldenSetError(f"{path}: tests files must be .csv, .json, .jsonl, .yaml or .yml")
    data, root = load_yaml(path)
    if not isinstance(data, list):
        raise GoldenSetError(f"{path}: expected a list of tests")
    return [RawTest(test, Origin(path, root), f"[{i}]") for i, test in enumerate(data)]


def csv_tests(path: Path) -> list[RawTest]:
    """promptfoo's CSV tests: the header names the vars; special columns are ``__expected`` (and
    ``__expected1``, ``__expected2``, ...: assertions in promptfoo's ``type:value`` shorthand),
    ``__description``, ``__metric``, ``__threshold``, ``__prefix``, ``__suffix``, ``__metadata:NAME``.
    Empty ``__expected`` cells are skipped, as promptfoo does."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise GoldenSetError(f"{path}: the CSV file is empty") from None
    tests: list[RawTest] = []
    start = reader.line_num + 1
    for row in reader:
        if any(cell.strip() for cell in row):
            if len(row) != len(header):
                raise GoldenSetError(f"{path}:{start}: {len(row)} cells for {len(header)} columns")
            tests.append(RawTest(_csv_test(dict(zip(header, row, strict=True))), Origin(path, row_line=start),
                                 f"row {len(tests) + 1}"))  # fmt: skip
        start = reader.line_num + 1
    return tests


def _csv_test(row: dict[str, str]) -> dict[str, Any]:
    test: dict[str, Any] = {"vars": {}, "assert": []}
    options: dict[str, str] = {}
    metadata: dict[str, str] = {}
    metric = None
    for key, value in row.items():
        if key.startswith("__expected"):
            if value.strip():
                test["assert"].append(assertion_from_string(value))
        elif key in ("__prefix", "__suffix"):
            options[key[2:]] = value
        elif key == "__description":
            test["description"] = value
        elif key == "__metric":
            metric = value or None
        elif key == "__threshold":
            test["threshold"] = value
        elif key.startswith("__metadata:"):
            metadata[key.removeprefix("__metadata:")] = value
        elif key.startswith("__"):
            test.setdefault("__unsupported", []).append(key)
        else:
            test["vars"][key] = value
    if metric:
        for assertion in test["assert"]:
            assertion["metric"] = metric
    if options:
        test["options"] = options
    if metadata:
        test["metadata"] = metadata
    return test


def load_var(value: Any, base: Path, at: str) -> Any:
    """A var's value; a ``file://`` value is replaced by the file's text (data files: their data)."""
    ref = file_ref(value)
    if ref is None:
        return value
    if runs_code(ref):
        raise Problem(at, f"file://{ref}: vars computed by code are not supported")
    (path,) = expand(base, ref, at)[:1]
    if path.suffix in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".mp3", ".wav"):
        raise Problem(at, f"file://{ref}: binary vars (images, audio, documents) are not supported")
    if path.suffix in _DATA:
        return load_yaml(path)[0]
    return read_text(path)
