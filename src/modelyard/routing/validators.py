"""Checks an answer must pass: a cascade escalates when one fails; a request asking for a JSON schema
has its answer validated against it (structured-output enforcement).

Each check returns ``None`` when the answer passes, else a short reason for the ledger. The judge check
calls a model, so the gateway runs it; :func:`judge_prompt` and :func:`judge_verdict` are its pure parts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from modelyard.config.routing import ValidatorConfig
from modelyard.providers.base import JSON


def answer_text(body: JSON) -> str | None:
    """The assistant's text in a chat.completion body (tool-call arguments when it called a tool)."""
    choices = body.get("choices") or ()
    if not choices:
        return None
    message = choices[0].get("message") or {}
    content = message.get("content")
    if isinstance(content, str):
        return content
    calls = message.get("tool_calls") or ()
    if calls:
        return "".join(str((c.get("function") or {}).get("arguments") or "") for c in calls)
    return None


@lru_cache(maxsize=256)
def _compiled(schema_json: bytes) -> Draft202012Validator:
    schema = orjson.loads(schema_json)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_violation(text: str | None, schema: dict[str, Any]) -> str | None:
    """Why ``text`` is not a JSON document valid against ``schema``, or ``None`` if it is."""
    if text is None:
        return "no answer text"
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "answer is not valid JSON"
    try:
        validator = _compiled(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    except SchemaError as exc:
        return f"the schema itself is invalid: {exc.message}"
    error = next(iter(validator.iter_errors(document)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"schema violation at {where}: {error.message}"


def check(text: str | None, validator: ValidatorConfig) -> str | None:
    """Run one non-judge validator."""
    if validator.kind == "non_empty":
        return None if text and text.strip() else "empty answer"
    if validator.kind == "max_length":
        limit = validator.max_chars or 0
        return None if text is not None and len(text) <= limit else f"answer longer than {limit} characters"
    if validator.kind == "regex":
        return (
            None if text is not None and re.search(validator.pattern or "", text) else "answer does not match"
        )
    if validator.kind == "json_schema":
        return schema_violation(text, validator.json_schema or {})
    raise ValueError(f"validator {validator.kind} needs a model call; use the judge helpers")


def first_failure(text: str | None, validators: Sequence[ValidatorConfig]) -> str | None:
    """The first non-judge validator that rejects ``text`` (as ``kind: reason``), or ``None``."""
    for validator in validators:
        if validator.kind == "judge":
            continue
        reason = check(text, validator)
        if reason is not None:
            return f"{validator.kind}: {reason}"
    return None


def requested_schema(body: JSON) -> dict[str, Any] | None:
    """The JSON Schema a request asked the answer to follow (``response_format: json_schema``)."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def judge_prompt(rubric: str, question: str, answer: str) -> JSON:
    """The chat body asking a judge model for a PASS/FAIL verdict."""
    return {
        "messages": [
            {
                "role": "system",
                "content": "You grade answers. Reply with exactly PASS or FAIL on the first line, then one reason.",
            },
            {"role": "user", "content": f"Rubric:\n{rubric}\n\nQuestion:\n{question}\n\nAnswer:\n{answer}"},
        ],
        "temperature": 0,
        "max_tokens": 64,
    }


def judge_verdict(text: str | None) -> bool:
    """A judge's answer passes only when its first word is PASS: anything unclear escalates."""
    words = (text or "").strip().split()
    return bool(words) and words[0].strip(".:").upper() == "PASS"
