"""Find and redact personal data and secrets in request text; put pseudonyms back into the answer.

    findings = detect(text)                                   # [Finding("EMAIL", 9, 25, "ana@example.org")]
    masked, findings = redact(text, mode="mask")              # "write to [EMAIL]"
    vault = Vault()
    safe, findings = redact(text, mode="pseudonymise", vault=vault)   # "write to <EMAIL_1>"
    answer = restore(upstream_answer, vault)                  # the originals back, for the client only

    body, vault, findings = redact_chat_body(request_body, mode="pseudonymise")
    restorer = Restorer(vault)                                # streamed answers: feed(chunk)…, flush()

Kinds: EMAIL, PHONE, CARD, IBAN, SSN, IP (v4 and v6) and SECRET; `pii_detectors` and `pii_numbers`
find them, docs/pii.md says how, and reports precision and recall on tests/fixtures/pii/corpus.jsonl.
A Finding holds the original text: record kinds and counts in logs and the ledger, never `.text`.
Results are pure functions of the arguments (memos only make repeated texts cheaper); the Vault and
Restorer are per-request state their caller owns.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from modelyard.policy.pii_detectors import ALL_KINDS, scan, scan_many
from modelyard.policy.pii_phones import DEFAULT_PII_REGIONS, checked_regions

__all__ = [
    "ALL_KINDS",
    "DEFAULT_PII_REGIONS",
    "Finding",
    "RedactionMode",
    "Restorer",
    "Vault",
    "detect",
    "redact",
    "redact_chat_body",
    "restore",
]

RedactionMode = Literal["mask", "pseudonymise"]
_MODES = ("mask", "pseudonymise")


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of personal data: its kind and where it is in the text it was found in."""

    kind: str
    start: int
    end: int
    text: str


def detect(
    text: str, kinds: frozenset[str] | None = None, *, regions: tuple[str, ...] | None = None
) -> list[Finding]:
    """Every finding of `kinds` (default: all) in `text`, non-overlapping and sorted by position.
    `regions` (ISO 3166 alpha-2, default DEFAULT_PII_REGIONS) are where national phone numbers, written
    without a country code, are looked for."""
    spans = scan(text, _checked(kinds), checked_regions(regions))
    return [Finding(kind, start, end, text[start:end]) for start, end, kind in spans]


class Vault:
    """Placeholder ↔ original for one request. The same original always gets the same placeholder, so
    a model can still tell that two mentions are the same person."""

    __slots__ = ("_counts", "_originals", "_placeholders")

    def __init__(self) -> None:
        self._originals: dict[str, str] = {}
        self._placeholders: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()

    def placeholder(self, kind: str, original: str) -> str:
        """The placeholder standing for `original`, e.g. `<EMAIL_1>`; made on first use."""
        key = (kind, original)
        found = self._placeholders.get(key)
        if found is None:
            self._counts[kind] += 1
            found = f"<{kind}_{self._counts[kind]}>"
            self._placeholders[key] = found
            self._originals[found] = original
        return found

    def original(self, placeholder: str) -> str | None:
        """The original a placeholder stands for, or None if this vault never issued it."""
        return self._originals.get(placeholder)

    def __len__(self) -> int:
        return len(self._originals)


_PLACEHOLDER = re.compile(r"<(?:" + "|".join(sorted(ALL_KINDS)) + r")_[1-9]\d{0,5}>")
# The longest placeholder: "<SECRET_" + 6 digits + ">". A chunk tail longer than this cannot be one.
_MAX_PLACEHOLDER = max(len(k) for k in ALL_KINDS) + 9


def restore(text: str, vault: Vault, *, in_json: bool = False) -> str:
    """`text` with every placeholder issued by `vault` replaced by its original; other text untouched.
    With `in_json`, `text` is JSON (tool-call arguments) and originals are inserted JSON-escaped."""
    if not len(vault) or "<" not in text:
        return text

    def original(m: re.Match[str]) -> str:
        found = vault.original(m.group())
        if found is None:
            return m.group()
        return orjson.dumps(found).decode()[1:-1] if in_json else found

    return _PLACEHOLDER.sub(original, text)


class Restorer:
    """Restores placeholders in a streamed answer chunk by chunk. When a chunk ends inside what may be a
    placeholder (`…write to <EMAI`), that tail is held back until the next chunk completes or refutes it;
    call `flush()` after the last chunk for whatever is still held."""

    __slots__ = ("_held", "_in_json", "_vault")

    def __init__(self, vault: Vault, *, in_json: bool = False) -> None:
        self._vault = vault
        self._in_json = in_json
        self._held = ""

    def feed(self, chunk: str) -> str:
        """The restored text that is safe to send now (possibly empty)."""
        text = self._held + chunk if self._held else chunk
        if not len(self._vault):
            return text
        cut = _partial_placeholder_start(text)
        self._held = text[cut:]
        return restore(text[:cut], self._vault, in_json=self._in_json)

    def flush(self) -> str:
        """Whatever is still held, restored: call once when the stream ends."""
        text, self._held = self._held, ""
        return restore(text, self._vault, in_json=self._in_json)


def _partial_placeholder_start(text: str) -> int:
    """Where an unfinished placeholder starts at the end of `text`, or len(text) if there is none."""
    at = text.rfind("<", max(0, len(text) - _MAX_PLACEHOLDER))
    if at == -1:
        return len(text)
    name, underscore, number = text[at + 1 :].partition("_")
    if underscore:
        possible = name in ALL_KINDS and (not number or number.isdigit())
    else:
        possible = any(kind.startswith(name) for kind in ALL_KINDS)
    return at if possible else len(text)


def redact(
    text: str,
    *,
    mode: RedactionMode,
    kinds: frozenset[str] | None = None,
    vault: Vault | None = None,
    regions: tuple[str, ...] | None = None,
) -> tuple[str, list[Finding]]:
    """`text` with each finding replaced — by `[KIND]` (mask) or by a placeholder recorded in `vault`
    (pseudonymise) — and the findings, whose offsets refer to the original `text`. `regions`: see
    `detect`."""
    replace = _replacer(mode, vault)
    findings = detect(text, kinds, regions=regions)
    return _replaced(text, findings, replace), findings


def _replacer(mode: str, vault: Vault | None) -> Callable[[Finding], str]:
    if mode == "mask":
        return lambda f: f"[{f.kind}]"
    if mode == "pseudonymise":
        if vault is None:
            raise ValueError(
                "redact(mode='pseudonymise') needs a vault: pass vault=Vault() and keep it to restore"
            )
        return lambda f: vault.placeholder(f.kind, f.text)
    raise ValueError(f"unknown redaction mode {mode!r}; allowed: {', '.join(_MODES)}")


def _replaced(text: str, findings: list[Finding], replace: Callable[[Finding], str]) -> str:
    if not findings:
        return text
    parts: list[str] = []
    at = 0
    for f in findings:
        parts += (text[at : f.start], replace(f))
        at = f.end
    parts.append(text[at:])
    return "".join(parts)


def _checked(kinds: frozenset[str] | None) -> frozenset[str]:
    if kinds is None:
        return ALL_KINDS
    unknown = kinds - ALL_KINDS
    if unknown:
        raise ValueError(
            f"unknown PII kind(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(ALL_KINDS))}"
        )
    return kinds


# ---------------------------------------------------------------- OpenAI chat request bodies
_Slot = tuple[Any, Any]
"""(container, key): `container[key]` is a str to redact, in a copy this module owns."""


def redact_chat_body(
    body: dict[str, Any],
    *,
    mode: RedactionMode,
    kinds: frozenset[str] | None = None,
    regions: tuple[str, ...] | None = None,
) -> tuple[dict[str, Any], Vault, list[Finding]]:
    """A redacted copy of an OpenAI chat request body, the vault to restore the answer with, and the
    findings (offsets relative to the text each was found in).

    Redacted: message `content` strings, text and refusal parts, tool-call and legacy function-call
    `arguments` (as JSON values when they parse), and the top-level `user`. The input is never mutated;
    values that need no change (images, tool schemas, parameters) are shared with it, not copied.
    `regions`: see `detect`."""
    vault = Vault()
    replace = _replacer(mode, vault)
    wanted = _checked(kinds)
    collector = _Collector()
    out = dict(body)
    messages = body.get("messages")
    if isinstance(messages, list):
        out["messages"] = [collector.message(m) for m in messages]
    if isinstance(body.get("user"), str):
        collector.slots.append((out, "user"))
    return out, vault, collector.redact(wanted, checked_regions(regions), replace)


class _Collector:
    """Copies the parts of a body that hold text, and remembers where each text is."""

    def __init__(self) -> None:
        self.slots: list[_Slot] = []
        # (container, key, parsed JSON holder, first slot, end slot) per tool-call `arguments` that parsed.
        self._json: list[tuple[dict[str, Any], str, list[Any], int, int]] = []

    def message(self, message: Any) -> Any:
        if not isinstance(message, dict):
            return message
        copy = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            self.slots.append((copy, "content"))
        elif isinstance(content, list):
            copy["content"] = [self._part(p) for p in content]
        if "tool_calls" in message and isinstance(message["tool_calls"], list):
            copy["tool_calls"] = [self._tool_call(c) for c in message["tool_calls"]]
        if "function_call" in message and isinstance(message["function_call"], dict):
            copy["function_call"] = self._function(message["function_call"])
        return copy

    def _part(self, part: Any) -> Any:
        if not isinstance(part, dict):
            return part
        field = {"text": "text", "refusal": "refusal"}.get(part.get("type", ""))
        if field is None or not isinstance(part.get(field), str):
            return part  # images, audio, files: nothing to redact
        copy = dict(part)
        self.slots.append((copy, field))
        return copy

    def _tool_call(self, call: Any) -> Any:
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            return call
        return {**call, "function": self._function(call["function"])}

    def _function(self, function: dict[str, Any]) -> dict[str, Any]:
        copy = dict(function)
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            self._arguments(copy, arguments)
        return copy

    def _arguments(self, function: dict[str, Any], arguments: str) -> None:
        """Redact arguments as JSON values when they parse, so JSON escapes (`\\n`) cannot hide a value."""
        try:
            holder = [orjson.loads(arguments)]
        except orjson.JSONDecodeError:
            self.slots.append((function, "arguments"))
            return
        first = len(self.slots)
        self._strings(holder, 0)
        self._json.append((function, "arguments", holder, first, len(self.slots)))

    def _strings(self, container: Any, key: Any) -> None:
        value = container[key]
        if isinstance(value, str):
            self.slots.append((container, key))
        elif isinstance(value, list):
            for i in range(len(value)):
                self._strings(value, i)
        elif isinstance(value, dict):
            for k in value:
                self._strings(value, k)

    def redact(
        self, kinds: frozenset[str], regions: tuple[str, ...], replace: Callable[[Finding], str]
    ) -> list[Finding]:
        """Scan all texts at once, write the redacted texts into the copies, return the findings."""
        texts: list[str] = [container[key] for container, key in self.slots]
        per_text = _detect_many(texts, kinds, regions)
        changed = [False] * len(texts)
        for i, ((container, key), text, found) in enumerate(zip(self.slots, texts, per_text, strict=True)):
            if found:
                container[key] = _replaced(text, found, replace)
                changed[i] = True
        for function, field, holder, first, end in self._json:
            if any(
                changed[first:end]
            ):  # re-serialise only what changed; untouched arguments keep their bytes
                function[field] = orjson.dumps(holder[0]).decode()
        return [f for found in per_text for f in found]


def _detect_many(texts: list[str], kinds: frozenset[str], regions: tuple[str, ...]) -> list[list[Finding]]:
    return [
        [Finding(kind, start, end, text[start:end]) for start, end, kind in spans]
        for text, spans in zip(texts, scan_many(texts, kinds, regions), strict=True)
    ]
