"""Apply a data class's PII policy to a request, and put pseudonyms back into the answer.

The detection itself is ``policy/pii.py``; this module decides *when* (the class's ``pii`` mode) and
applies it to the gateway's types: the body that goes upstream, the answer that comes back (whole or
streamed), and the note the ledger keeps — kinds and counts only, never the values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import NamedTuple

import orjson

from modelyard.config.routing import DataClassPolicy
from modelyard.policy.pii import Finding, Restorer, Vault, redact, redact_chat_body, restore
from modelyard.providers.base import JSON, ChatResult


class Redaction(NamedTuple):
    #: The body to send upstream (the client's own when nothing was found).
    body: JSON
    #: Set when pseudonyms are to be restored in the answer.
    vault: Vault | None
    #: For the ledger's policy column, e.g. ``pii pseudonymise: EMAIL 1, PHONE 2``.
    note: str | None


def _note(mode: str, findings: list[Finding]) -> str | None:
    if not findings:
        return None
    counts = Counter(f.kind for f in findings)
    return f"pii {mode}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))


def redact_chat(policy: DataClassPolicy, body: JSON) -> Redaction:
    if policy.pii == "off":
        return Redaction(body, None, None)
    redacted, vault, findings = redact_chat_body(body, mode=policy.pii, regions=policy.pii_regions)
    if not findings:
        return Redaction(body, None, None)
    restoring = policy.pii == "pseudonymise" and policy.restore_pii
    return Redaction(redacted, vault if restoring else None, _note(policy.pii, findings))


def redact_embeddings(policy: DataClassPolicy, body: JSON) -> Redaction:
    """Embedding inputs are masked (there is no answer text to restore)."""
    if policy.pii == "off":
        return Redaction(body, None, None)
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
    found: list[Finding] = []
    out: list[object] = []
    for text in texts:
        if isinstance(text, str):
            masked, findings = redact(text, mode="mask", regions=policy.pii_regions)
            found += findings
            out.append(masked)
        else:
            out.append(text)
    if not found:
        return Redaction(body, None, None)
    new_input: object = out[0] if isinstance(inputs, str) else out
    return Redaction({**body, "input": new_input}, None, _note("mask", found))


def restore_result(result: ChatResult, vault: Vault) -> ChatResult:
    """The answer with pseudonyms replaced by the client's originals (the raw bytes no longer apply)."""
    choices = []
    for choice in result.body.get("choices") or ():
        message = dict(choice.get("message") or {})
        if isinstance(message.get("content"), str):
            message["content"] = restore(message["content"], vault)
        if message.get("tool_calls"):
            message["tool_calls"] = [_restore_call(call, vault) for call in message["tool_calls"]]
        choices.append({**choice, "message": message})
    return replace(result, body={**result.body, "choices": choices}, raw=None)


def _restore_call(call: JSON, vault: Vault) -> JSON:
    function = dict(call.get("function") or {})
    if isinstance(function.get("arguments"), str):
        function["arguments"] = restore(function["arguments"], vault, in_json=True)
    return {**call, "function": function}


class StreamRestorer:
    """Restores pseudonyms in a streamed answer, chunk by chunk, for dict chunks and passed-through SSE
    bytes alike; a placeholder split across chunks is held back until it is complete."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._content = Restorer(vault)
        self._arguments: dict[int, Restorer] = {}
        self._last: JSON | None = None

    def chunk(self, chunk: JSON) -> JSON:
        self._last = chunk
        choices = []
        for choice in chunk.get("choices") or ():
            delta = dict(choice.get("delta") or {})
            if isinstance(delta.get("content"), str):
                delta["content"] = self._content.feed(delta["content"])
            if delta.get("tool_calls"):
                delta["tool_calls"] = [self._call(call) for call in delta["tool_calls"]]
            choices.append({**choice, "delta": delta})
        return {**chunk, "choices": choices} if choices else chunk

    def _call(self, call: JSON) -> JSON:
        function = dict(call.get("function") or {})
        if isinstance(function.get("arguments"), str):
            restorer = self._arguments.setdefault(call.get("index", 0), Restorer(self._vault, in_json=True))
            function["arguments"] = restorer.feed(function["arguments"])
        return {**call, "function": function}

    def block(self, block: bytes) -> bytes:
        """Passed-through SSE events: parsed, restored and re-encoded (only for requests that need it)."""
        out = bytearray()
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                out += b"data: " + orjson.dumps(self.chunk(orjson.loads(line[6:]))) + b"\n\n"
        return bytes(out)

    def tail(self) -> JSON | None:
        """A last chunk with whatever text was held back, if any."""
        text = self._content.flush()
        if not text or self._last is None:
            return None
        return {**self._last, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
