"""Ways to create a golden set besides writing it: OpenAI evals JSONL, and the gateway's own ledger.

- OpenAI evals samples (github.com/openai/evals, "basic" evals): one JSON object per line with
  ``input`` (chat messages, or a prompt string) and ``ideal`` (the answer, or a list of accepted answers).
- Ledger samples: requests of workloads that opted in to content logging (``log_content: true``) carry the
  messages and the answer; the recorded answer becomes ``expected``. Review such a set before trusting it:
  it encodes what the current model said, not what is right.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from modelyard.evals.golden import Check, GoldenCase, GoldenSetError
from modelyard.ledger.schema import RequestRow


def _openai_evals_case(raw: Any, number: int) -> GoldenCase:
    if not isinstance(raw, dict) or "input" not in raw:
        raise ValueError("an OpenAI evals sample needs 'input'")
    prompt = raw["input"]
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m for m in prompt):
        messages = [dict(m) for m in prompt]
    else:
        raise ValueError("'input' must be a string or a list of chat messages")
    ideal = raw.get("ideal")
    if isinstance(ideal, str):
        return GoldenCase(id=f"line-{number}", messages=messages, expected=ideal, checks=(Check("exact"),))
    if isinstance(ideal, list) and ideal and all(isinstance(i, str) for i in ideal):
        check = Check("exact", {"any_of": list(ideal)})
        return GoldenCase(id=f"line-{number}", messages=messages, expected=ideal[0], checks=(check,))
    raise ValueError("'ideal' must be a string or a non-empty list of strings")


def import_openai_evals(path: str | Path) -> list[GoldenCase]:
    """Cases from an OpenAI evals samples file; case ids are ``line-N`` after the source line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GoldenSetError(f"cannot read {path}: {exc.strerror}") from None
    cases, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            cases.append(_openai_evals_case(orjson.loads(line), number))
        except (orjson.JSONDecodeError, ValueError) as exc:
            problems.append(f"{path}:{number}: {exc}")
    if problems:
        raise GoldenSetError(f"{len(problems)} bad line(s):\n  " + "\n  ".join(problems))
    return cases


def _answer_text(completion: str, streamed: bool) -> str | None:
    """The assistant text of a logged completion.

    The gateway logs a streamed answer as its plain concatenated text, which may itself be JSON (``4``,
    ``{"total": 12}``): it is taken as it is. A non-streamed answer is logged as the JSON of ``choices``.
    """
    if streamed:
        return completion
    try:
        choices = orjson.loads(completion)
    except orjson.JSONDecodeError:
        return completion  # not the choices JSON: plain text
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        content = (choices[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else None
    return None


def cases_from_ledger(rows: Iterable[RequestRow], checks: tuple[Check, ...] = ()) -> list[GoldenCase]:
    """Cases from answered ledger rows that carry content; others are skipped (metadata-only rows, and
    rows the client got 200 for that still failed: a stream cut mid-answer, an answer a validator refused)."""
    cases = []
    for row in rows:
        if row.status != 200 or row.error_kind or not row.prompt or not row.completion:
            continue
        messages = orjson.loads(row.prompt)
        expected = _answer_text(row.completion, row.streamed)
        if not isinstance(messages, list) or expected is None:
            continue
        cases.append(
            GoldenCase(
                id=row.request_id,
                messages=messages,
                expected=expected,
                checks=checks or (Check("exact"),),
                tags=(f"from-ledger:{row.model}",),
                workload=row.workload,
            )
        )
    return cases
