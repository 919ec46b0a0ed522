"""Golden sets: the provider-neutral JSONL format, and its loader.

One JSON object per line (blank lines and lines starting with ``//`` are skipped)::

    {"id": "inv-001",                        required, unique in the file
     "messages": [{"role": "user", "content": "..."}],   required, OpenAI chat messages
     "expected": "42",                       optional: the reference answer
     "schema": {"type": "object", ...},      optional: a JSON Schema the answer must satisfy
     "checks": [{"type": "numeric", "tolerance": 0.01}],  optional: evaluators (see evaluators.py)
     "tags": ["invoice"],                    optional
     "workload": "extraction"}               optional: the gateway workload the case belongs to

A case without ``checks`` gets ``exact`` when it has ``expected`` and ``json_schema`` when it has ``schema``.
Every problem is reported with its line number, all at once, so a file is fixed in one pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.errors import ConfigError

CaseId = str


class GoldenSetError(ConfigError):
    """A golden set file is malformed; the message lists every bad line as ``file:line: problem``."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    role: str = Field(pattern=r"^(system|developer|user|assistant|tool)$")
    content: str | list[Any] | None = None


class _Check(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    type: str


class _RawCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    id: str = Field(min_length=1, max_length=200)
    messages: list[_Message] = Field(min_length=1)
    expected: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    checks: list[_Check] = []
    tags: list[str] = []
    workload: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One evaluator to apply: its ``type`` and its parameters as written in the set."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GoldenCase:
    id: CaseId
    messages: list[dict[str, Any]]
    expected: str | None = None
    json_schema: dict[str, Any] | None = None
    checks: tuple[Check, ...] = ()
    tags: tuple[str, ...] = ()
    workload: str | None = None

    def fingerprint(self) -> str:
        """A hash of what is sent to the model: a cached answer is reused only for the same prompt."""
        return hashlib.sha256(orjson.dumps(self.messages, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """The case as one line of the JSONL format (the inverse of the loader)."""
        raw: dict[str, Any] = {"id": self.id, "messages": self.messages}
        if self.expected is not None:
            raw["expected"] = self.expected
        if self.json_schema is not None:
            raw["schema"] = self.json_schema
        if self.checks:
            raw["checks"] = [{"type": c.type, **c.params} for c in self.checks]
        if self.tags:
            raw["tags"] = list(self.tags)
        if self.workload is not None:
            raw["workload"] = self.workload
        return raw


@dataclass(frozen=True, slots=True)
class GoldenSet:
    """A named, ordered list of cases. The order is the file's order: runs are deterministic."""

    name: str
    cases: tuple[GoldenCase, ...]

    @property
    def workloads(self) -> set[str]:
        return {c.workload for c in self.cases if c.workload}


def _default_checks(raw: _RawCase) -> tuple[Check, ...]:
    if raw.checks:
        return tuple(Check(c.type, dict(c.model_extra or {})) for c in raw.checks)
    defaults = []
    if raw.expected is not None:
        defaults.append(Check("exact"))
    if raw.json_schema is not None:
        defaults.append(Check("json_schema"))
    return tuple(defaults)


def parse_case(raw: Any) -> GoldenCase:
    """Validate one decoded JSON object; raises ``ValueError`` saying what is wrong."""
    try:
        case = _RawCase.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(line)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(problems) from None
    checks = _default_checks(case)
    if not checks:
        raise ValueError("nothing to check: give 'expected', 'schema' or 'checks'")
    return GoldenCase(
        id=case.id,
        messages=[m.model_dump(exclude_none=True) for m in case.messages],
        expected=case.expected,
        json_schema=case.json_schema,
        checks=checks,
        tags=tuple(case.tags),
        workload=case.workload,
    )


def parse_lines(lines: Iterable[str], *, source: str) -> list[GoldenCase]:
    """Parse JSONL text; raises :class:`GoldenSetError` listing every bad line with its number."""
    cases: list[GoldenCase] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("//"):
            continue
        try:
            case = parse_case(orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            problems.append(f"{source}:{number}: not valid JSON ({exc})")
            continue
        except ValueError as exc:
            problems.append(f"{source}:{number}: {exc}")
            continue
        if case.id in seen:
            problems.append(f"{source}:{number}: duplicate id {case.id!r} (first on line {seen[case.id]})")
            continue
        seen[case.id] = number
        cases.append(case)
    if problems:
        raise GoldenSetError(f"{len(problems)} bad line(s) in the golden set:\n  " + "\n  ".join(problems))
    if not cases:
        raise GoldenSetError(f"{source}: the golden set has no cases")
    return cases


def load_golden_set(path: str | Path, name: str | None = None) -> GoldenSet:
    """Load a JSONL golden set; its name defaults to the file's stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GoldenSetError(f"cannot read golden set {path}: {exc.strerror}") from None
    cases = parse_lines(text.splitlines(), source=str(path))
    return GoldenSet(name=name or path.stem, cases=tuple(cases))


def dump_cases(cases: Iterable[GoldenCase]) -> str:
    """JSONL text for ``cases``, one per line."""
    return "".join(orjson.dumps(c.to_json()).decode() + "\n" for c in cases)
