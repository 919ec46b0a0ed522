"""The adapter contract every provider module implements, and the types that cross it.

The gateway speaks OpenAI's Chat Completions format internally: requests arrive in it, responses leave in
it. An adapter translates that format to one API family's wire format and back (pure functions in its
module), and owns the HTTP call. Streaming adapters yield OpenAI ``chat.completion.chunk`` dicts and fill
in a :class:`StreamMeter` as they go, so usage survives a stream that is cut or cancelled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

JSON = dict[str, Any]


@dataclass(slots=True)
class Usage:
    """Tokens as the provider bills them, normalised to one convention.

    ``input_tokens`` counts every prompt token (uncached, cache reads and cache writes);
    ``cached_input_tokens`` and ``cache_write_tokens`` are parts of it. ``output_tokens`` counts every
    generated token billed at the output rate, reasoning included; ``reasoning_tokens`` is part of it.
    Providers differ (Anthropic reports cache tokens *beside* input tokens; Gemini reports thinking tokens
    *beside* candidates); each adapter converts to this convention so pricing is one formula.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    #: True when we counted or estimated the tokens because the provider never reported them
    #: (a stream the client cancelled, or the upstream cut before its usage event).
    estimated: bool = False
    #: Anthropic bills 1-hour cache writes at a higher rate than 5-minute ones; part of cache_write_tokens.
    cache_write_1h_tokens: int = 0
    #: Rerank APIs that bill per search rather than per token (Cohere: one query with up to 100 documents,
    #: a long document's chunks counting separately): the units billed, 0 for everything else.
    search_units: int = 0

    def to_openai(self) -> JSON:
        """The ``usage`` object of an OpenAI response."""
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


@dataclass(slots=True)
class ChatResult:
    """A finished non-streaming chat completion, already in OpenAI format."""

    body: JSON
    usage: Usage | None
    finish_reason: str | None = None
    #: The bytes to send as-is when the adapter could pass the upstream body through untouched.
    raw: bytes | None = None
    #: Set by the gateway when this answer failed validation after every attempt and is returned anyway:
    #: why it failed (the HTTP layer marks the answer; see ``gateway/unvalidated.py``).
    rejection: str | None = None


@dataclass(slots=True)
class EmbeddingResult:
    body: JSON
    usage: Usage | None
    raw: bytes | None = None


#: Raw stream bytes held uncounted (see :meth:`StreamMeter.defer`) are counted once they reach this size.
UNCOUNTED_LIMIT = 64 * 1024


class StreamMeter:
    """What a stream has produced so far; the adapter updates it while yielding chunks.

    A plain class with a constructor of no arguments (built once per streamed request: a dataclass's
    generated ``__init__`` with defaults and factories costs twice the bytecode)."""

    __slots__ = (
        "chunks",
        "count_text",
        "extra",
        "finish_reason",
        "output_chars",
        "started",
        "tool_calls",
        "uncounted",
        "uncounted_bytes",
        "upstream_model",
        "usage",
    )

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.chunks = 0
        #: Characters of generated text and tool arguments, to estimate output tokens if the stream is cut
        #: (see :meth:`text_chars`: raw runs may still be waiting to be counted).
        self.output_chars = 0
        #: Byte streams (runs of OpenAI-format events): some generated text or tool arguments arrived (the
        #: first token, for time-to-first-token). Set by :meth:`defer` and by a relay that counts text as
        #: it goes; chunk-dict streams are judged by their chunks instead.
        self.started = False
        self.upstream_model: str | None = None
        #: Tool calls the answer began (the ledger's ``tool_calls``), counted as the adapter sees them.
        self.tool_calls = 0
        self.extra: dict[str, Any] = {}
        #: Raw runs of events after output began, counted only if an estimate needs them (most streams
        #: end with the provider's own usage, and then counting their text would be wasted work).
        self.uncounted: list[bytes] = []
        self.uncounted_bytes = 0
        self.count_text: Callable[[bytes], int] | None = None

    def defer(self, raw: bytes, count_text: Callable[[bytes], int]) -> None:
        """Hold a raw run to count later; past :data:`UNCOUNTED_LIMIT` bytes, count what is held."""
        self.started = True
        self.uncounted.append(raw)
        self.count_text = count_text
        self.uncounted_bytes += len(raw)
        if self.uncounted_bytes > UNCOUNTED_LIMIT:
            self.text_chars()

    def text_chars(self) -> int:
        """:attr:`output_chars` with every held run counted."""
        if self.uncounted:
            assert self.count_text is not None
            self.output_chars += sum(map(self.count_text, self.uncounted))
            self.uncounted.clear()
            self.uncounted_bytes = 0
        return self.output_chars


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter supports, declared as data so the gateway can refuse early and explain why."""

    chat: bool = True
    streaming: bool = True
    tools: bool = True
    json_schema: bool = True
    embeddings: bool = False


class ChatCall(NamedTuple):
    """One upstream chat call: the validated OpenAI-format body and the model to ask for upstream. (A
    NamedTuple: built on every request, and a frozen dataclass's ``__init__`` costs several times more.)"""

    body: JSON
    upstream_model: str
    #: The client asked for usage in the stream (``stream_options.include_usage``); adapters always ask the
    #: upstream for usage so metering is exact, and the gateway strips it when the client did not ask.
    client_wants_stream_usage: bool = False


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    body: JSON
    upstream_model: str


class Adapter(Protocol):
    """One configured provider. Instances hold the pooled HTTP session and the credential."""

    name: str
    capabilities: Capabilities

    async def complete(self, call: ChatCall) -> ChatResult:
        """Run a non-streaming chat completion; raise :class:`modelyard.errors.UpstreamError` on failure."""
        ...

    def stream(self, call: ChatCall, meter: StreamMeter) -> AsyncIterator[JSON | bytes]:
        """Yield OpenAI ``chat.completion.chunk`` dicts — or, for an upstream already speaking OpenAI's
        format, ``bytes`` that are whole ``data: ...`` SSE events passed through (never ``[DONE]``). Keep
        ``meter`` current; raise UpstreamError on failure.

        Dict streams yield the final usage-only chunk (``choices: []``) too, and the gateway drops it when
        the client did not ask for usage; byte streams drop it themselves
        (``call.client_wants_stream_usage``).
        """
        ...

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        """Create embeddings; adapters without ``capabilities.embeddings`` raise UpstreamError."""
        ...

    async def close(self) -> None:
        """Release pooled connections."""
        ...


def estimate_tokens(chars: int) -> int:
    """A rough token count from characters (~4 per token for English), used only when the provider never
    reported usage; rows built from it carry ``usage_estimated``."""
    return (chars + 3) // 4


def message_chars(body: JSON) -> int:
    """Characters of prompt text in an OpenAI chat body, for estimating input tokens of a cut stream."""
    total = 0
    for message in body.get("messages", ()):
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
    return total
