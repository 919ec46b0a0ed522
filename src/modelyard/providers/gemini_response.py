"""Gemini responses, stream events, usage and error bodies → OpenAI format: pure functions, no I/O.

Usage convention (GenerateContentResponse.UsageMetadata, https://ai.google.dev/api/generate-content):

* ``promptTokenCount`` already *includes* ``cachedContentTokenCount`` ("when cachedContent is set, this is
  still the total effective prompt size"), so cached tokens are a part of input, as our ``Usage`` wants.
* ``toolUsePromptTokenCount`` (tool results Gemini fed itself, e.g. search grounding) is reported *beside*
  the prompt and billed as input, so it is added to ``input_tokens``.
* ``candidatesTokenCount`` *excludes* ``thoughtsTokenCount``; thinking is billed at the output rate
  (https://ai.google.dev/gemini-api/docs/pricing: "output price, including thinking tokens"), so
  ``output_tokens`` = candidates + thoughts and ``reasoning_tokens`` = thoughts.
* Gemini bills implicit cache hits as reads and has no per-token cache *write* charge (explicit caches
  are billed as storage per hour), so ``cache_write_tokens`` stays 0.
* In a stream every chunk may carry ``usageMetadata``; the figures are running totals, the last is final.
"""

from __future__ import annotations

import struct
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelyard.errors import UpstreamError, upstream_error_for_status
from modelyard.providers.base import JSON, Usage, estimate_tokens

#: Finish reasons that mean a safety or policy filter stopped the answer (FinishReason enum).
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
#: ErrorInfo reasons Google gives for a key that is wrong, expired or missing (sent as 400 or 403).
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})


def usage_from_gemini(meta: JSON | None) -> Usage:
    """Normalise ``usageMetadata`` to :class:`Usage` (see the module docstring for the convention)."""
    meta = meta or {}
    thoughts = int(meta.get("thoughtsTokenCount", 0))
    return Usage(
        input_tokens=int(meta.get("promptTokenCount", 0)) + int(meta.get("toolUsePromptTokenCount", 0)),
        output_tokens=int(meta.get("candidatesTokenCount", 0)) + thoughts,
        cached_input_tokens=int(meta.get("cachedContentTokenCount", 0)),
        reasoning_tokens=thoughts,
    )


def map_finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    """Gemini's FinishReason → OpenAI's. Gemini says STOP after a function call; OpenAI says tool_calls."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if has_tool_calls else "stop"


@dataclass(slots=True)
class _Parts:
    """Text and tool calls read from candidate parts; thought parts are reasoning, not content."""

    texts: list[str] = field(default_factory=list)
    calls: list[JSON] = field(default_factory=list)


def _read_parts(parts: list[JSON], first_call: int) -> _Parts:
    read = _Parts()
    for part in parts:
        if part.get("thought"):
            continue
        if "functionCall" in part:
            read.calls.append(_tool_call(part, first_call + len(read.calls)))
        elif isinstance(part.get("text"), str):
            read.texts.append(part["text"])
    return read


def _tool_call(part: JSON, number: int) -> JSON:
    """An OpenAI tool call; Gemini's optional ``id`` is kept, else ``call_<n>`` counting from 1."""
    call = part["functionCall"]
    tool_call: JSON = {
        "id": call.get("id") or f"call_{number}",
        "type": "function",
        "function": {"name": call["name"], "arguments": orjson.dumps(call.get("args") or {}).decode()},
    }
    if part.get("thoughtSignature"):
        tool_call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return tool_call


def _candidate(response: JSON) -> JSON:
    candidates = response.get("candidates") or [{}]
    return dict(candidates[0])


def _blocked(response: JSON) -> bool:
    """The prompt itself was blocked: no candidates, ``promptFeedback.blockReason`` set."""
    return not response.get("candidates") and bool((response.get("promptFeedback") or {}).get("blockReason"))


def from_gemini_response(
    response: JSON, *, model: str, created: int, response_id: str
) -> tuple[JSON, Usage, str]:
    """A ``generateContent`` answer → (OpenAI chat.completion body, usage, finish reason).

    ``model`` and ``response_id`` are fallbacks for when Gemini omits ``modelVersion`` / ``responseId``.
    """
    candidate = _candidate(response)
    read = _read_parts((candidate.get("content") or {}).get("parts") or [], 1)
    reason = "SAFETY" if _blocked(response) else candidate.get("finishReason")
    finish = map_finish_reason(reason, bool(read.calls))
    usage = usage_from_gemini(response.get("usageMetadata"))
    message: JSON = {"role": "assistant", "content": "".join(read.texts) or None}
    if read.calls:
        message["tool_calls"] = read.calls
    body: JSON = {
        "id": response.get("responseId") or response_id,
        "object": "chat.completion",
        "created": created,
        "model": response.get("modelVersion") or model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage.to_openai(),
    }
    return body, usage, finish


def error_from_body(body: Any, status: int, provider: str) -> UpstreamError | None:
    """The mapped error for a Gemini error body, or None when it is not one.

    Google answers a bad key with 400 INVALID_ARGUMENT and ``ErrorInfo.reason`` API_KEY_INVALID, which
    the generic status mapping would pass to the client as *their* bad request; the structured reason
    (never the message text) makes it an auth failure. A ``RetryInfo.retryDelay`` ("7s") becomes
    ``retry_after`` when no Retry-After header gave one.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    details = [d for d in error.get("details") or () if isinstance(d, dict)]
    reasons = {d.get("reason") for d in details}
    code = 401 if reasons & _AUTH_REASONS else int(error.get("code") or status)
    mapped = upstream_error_for_status(provider, code, str(error.get("message") or f"HTTP {status}"))
    mapped.upstream_status = status
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            mapped.retry_after = _seconds(detail.get("retryDelay"))
    return mapped


def _seconds(duration: Any) -> float | None:
    """A protobuf Duration in JSON ("7s", "0.5s") as seconds."""
    if not isinstance(duration, str) or not duration.endswith("s"):
        return None
    try:
        return float(duration[:-1])
    except ValueError:
        return None


class StreamTranslator:
    """Turns ``streamGenerateContent`` SSE payloads into OpenAI ``chat.completion.chunk`` dicts.

    Feed each decoded ``data:`` object to :meth:`feed`; call :meth:`finish` when the stream ends. Gemini
    has no terminal event: the chunk carrying ``finishReason`` is the last, so a stream that ends without
    one was cut (:attr:`finished` is False).
    """

    def __init__(self, *, model: str, created: int, response_id: str, provider: str = "gemini") -> None:
        self.model = model
        self.created = created
        self.response_id = response_id
        self.provider = provider
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.output_chars = 0
        self._started = False
        self.tool_calls = 0

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def feed(self, event: JSON) -> list[JSON]:
        """The chunks one Gemini payload produces; raises the mapped error for an in-stream error."""
        error = error_from_body(event, 500, self.provider)
        if error is not None:
            raise error
        self.model = event.get("modelVersion") or self.model
        self.response_id = event.get("responseId") or self.response_id
        if event.get("usageMetadata"):
            self.usage = usage_from_gemini(event["usageMetadata"])
        chunks = [] if self._started else [self._chunk({"role": "assistant", "content": ""})]
        self._started = True
        candidate = _candidate(event)
        read = _read_parts((candidate.get("content") or {}).get("parts") or [], self.tool_calls + 1)
        chunks.extend(self._text_chunk(text) for text in read.texts if text)
        for call in read.calls:
            chunks.extend(self._call_chunks(call))
        reason = "SAFETY" if _blocked(event) else candidate.get("finishReason")
        if reason and not self.finished:
            self.finish_reason = map_finish_reason(reason, self.tool_calls > 0)
            chunks.append(self._chunk({}, self.finish_reason))
        return chunks

    def finish(self) -> JSON:
        """The closing usage-only chunk (``choices: []``); the gateway strips it if the client did not ask."""
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = (self.usage or Usage()).to_openai()
        return chunk

    def _text_chunk(self, text: str) -> JSON:
        self.output_chars += len(text)
        return self._chunk({"content": text})

    def _call_chunks(self, call: JSON) -> list[JSON]:
        """OpenAI's shape for a tool call: id and name first, then the arguments as a later fragment."""
        index, self.tool_calls = self.tool_calls, self.tool_calls + 1
        arguments = call["function"]["arguments"]
        self.output_chars += len(arguments)
        head = {key: value for key, value in call.items() if key != "function"}
        head.update(index=index, function={"name": call["function"]["name"], "arguments": ""})
        return [
            self._chunk({"tool_calls": [head]}),
            self._chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}),
        ]

    def _chunk(self, delta: JSON, finish_reason: str | None = None) -> JSON:
        return {
            "id": self.response_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }


def from_gemini_embeddings(response: JSON, request: JSON, texts: list[str], model: str) -> tuple[JSON, Usage]:
    """A ``batchEmbedContents`` answer → the OpenAI embeddings body.

    Gemini reports no token usage for embeddings, so input tokens are estimated from the characters and
    the usage is marked ``estimated``. ``encoding_format: base64`` gets little-endian float32, as OpenAI's.
    """
    base64 = request.get("encoding_format") == "base64"
    data = []
    for index, embedding in enumerate(response.get("embeddings") or ()):
        values = [float(v) for v in embedding.get("values") or ()]
        vector: Any = b64encode(struct.pack(f"<{len(values)}f", *values)).decode() if base64 else values
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(estimate_tokens(len(text)) for text in texts)
    usage = Usage(input_tokens=tokens, estimated=True)
    body: JSON = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body, usage
