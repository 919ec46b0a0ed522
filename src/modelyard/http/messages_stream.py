"""A chat stream retold as Anthropic's Messages stream events (docs.anthropic.com/en/api/messages-streaming).

``message_start``; per content block ``content_block_start``, ``content_block_delta`` (``text_delta`` or
``input_json_delta``), ``content_block_stop``; then ``message_delta`` with the stop reason and usage, and
``message_stop``. A stream the upstream cut ends with an ``error`` event (and no ``message_stop``).
Fed by :class:`~modelyard.http.translated_stream.TranslatedStream`.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.http.messages_api import STOP_REASONS, new_id, usage_of
from modelyard.providers.base import JSON


def event(kind: str, payload: JSON) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


class MessageEvents:
    """Chat chunks → Anthropic stream events, one message's worth."""

    def __init__(self, request: JSON) -> None:
        self.model = str(request.get("model") or "")
        self.id = new_id("msg")
        #: The open content block: ("text", index) or ("tool", index, chat tool-call index); None.
        self.open: tuple[Any, ...] | None = None
        self.blocks = 0
        self.usage: Any = None
        self.finish_reason: str | None = None
        #: ``modelyard.validation`` of a cascade's answer that failed validation (gateway/cached.py): said
        #: again on ``message_delta``, the event that carries the stop reason.
        self.marking: Any = None

    def start(self) -> bytes:
        message: JSON = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},  # known at the end: message_delta says it
        }
        return event("message_start", {"message": message})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        index = self.open[1]
        self.open = None
        return event("content_block_stop", {"index": index})

    def chunk(self, chunk: JSON) -> bytes:
        out: list[bytes] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if "modelyard" in chunk:
            self.marking = chunk["modelyard"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.open is None or self.open[0] != "text":
                    out.append(self._close())
                    self.open = ("text", self.blocks)
                    self.blocks += 1
                    block = {"type": "text", "text": ""}
                    out.append(event("content_block_start", {"index": self.open[1], "content_block": block}))
                text_delta = {"type": "text_delta", "text": delta["content"]}
                out.append(event("content_block_delta", {"index": self.open[1], "delta": text_delta}))
            for call in delta.get("tool_calls") or ():
                out.append(self._tool_delta(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return b"".join(out)

    def _tool_delta(self, call: JSON) -> bytes:
        out: list[bytes] = []
        function = call.get("function") or {}
        position = call.get("index", 0)
        if self.open is None or self.open[0] != "tool" or self.open[2] != position:
            out.append(self._close())
            self.open = ("tool", self.blocks, position)
            self.blocks += 1
            block = {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu"),
                "name": function.get("name", ""),
                "input": {},
            }
            out.append(event("content_block_start", {"index": self.open[1], "content_block": block}))
        if function.get("arguments"):
            json_delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
            out.append(event("content_block_delta", {"index": self.open[1], "delta": json_delta}))
        return b"".join(out)

    def finish(self) -> bytes:
        usage = usage_of(self.usage)
        delta = {"stop_reason": STOP_REASONS.get(str(self.finish_reason), "end_turn"), "stop_sequence": None}
        closing: JSON = {"delta": delta, "usage": usage}
        if self.marking is not None:
            closing["modelyard"] = self.marking
        return self._close() + event("message_delta", closing) + event("message_stop", {})

    def fail(self, error: JSON) -> bytes:
        raw = error.get("error")
        details: JSON = raw if isinstance(raw, dict) else {}
        kind = "overloaded_error" if details.get("code") == "upstream_unavailable" else "api_error"
        message = details.get("message") or "the upstream stream broke off"
        return self._close() + event("error", {"error": {"type": kind, "message": message}})
