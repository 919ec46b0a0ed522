"""A chat stream retold as the Responses API's stream events.

The gateway streams Chat Completions chunks (``data: {chat.completion.chunk}``, then ``[DONE]``, or an error
event when the upstream broke after the first token). :class:`EventTranslator` turns them into the events
the Responses API sends instead (platform.openai.com/docs/api-reference/responses-streaming):
``response.created``, ``response.in_progress``, for text ``response.output_item.added``,
``response.content_part.added``, ``response.output_text.delta`` … ``.done``, ``response.content_part.done``,
``response.output_item.done``; for a tool call ``response.output_item.added`` (a ``function_call``),
``response.function_call_arguments.delta`` … ``.done``, ``response.output_item.done``; and last
``response.completed`` (or ``response.incomplete`` at the token limit) carrying the whole response and its
usage. A stream the upstream cut ends with ``error`` and ``response.failed``.

:class:`EventTranslator` is the pure part (chunks in, events out); :mod:`modelyard.http.translated_stream`
parses the chat stream's frames and feeds it.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.http.responses_api import (
    finish_status,
    function_call_item,
    message_item,
    new_id,
    skeleton,
    usage_of,
)
from modelyard.providers.base import JSON


def event(payload: JSON) -> bytes:
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class EventTranslator:
    """Chat chunks → Responses events, one response's worth."""

    def __init__(self, request: JSON) -> None:
        self.request = request
        self.response = skeleton(request, new_id("resp"), str(request.get("model") or ""), "in_progress")
        self.sequence = 0
        #: The open text item: (output index, item id, text so far), or None.
        self.text: tuple[int, str, list[str]] | None = None
        #: Tool calls by their chat index: [output index, item id, call id, name, arguments so far].
        self.calls: dict[int, list[Any]] = {}
        self.output: list[JSON | None] = []
        self.usage: JSON | None = None
        self.finish_reason: str | None = None
        #: A cascade's answer that failed validation carries ``modelyard.validation`` on its finish chunk
        #: (gateway/cached.py): the final response object carries it on, as a whole answer's does.
        self.marking: JSON | None = None

    def _event(self, kind: str, **members: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **members}
        self.sequence += 1
        return event(payload)

    def start(self) -> bytes:
        return self._event("response.created", response=self.response) + self._event(
            "response.in_progress", response=self.response
        )

    def chunk(self, chunk: JSON) -> bytes:
        out: list[bytes] = []
        if isinstance(chunk.get("model"), str):
            self.response["model"] = chunk["model"]
        if chunk.get("usage"):
            self.usage = usage_of(chunk["usage"])
        if "modelyard" in chunk:
            self.marking = chunk["modelyard"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.append(self._text_delta(delta["content"]))
            for call in delta.get("tool_calls") or ():
                out.append(self._call_delta(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return b"".join(out)

    def _text_delta(self, text: str) -> bytes:
        added = b""
        if self.text is None:
            index, item_id = len(self.output), new_id("msg")
            self.output.append(None)
            self.text = (index, item_id, [])
            added = self._event(
                "response.output_item.added",
                output_index=index,
                item=message_item(item_id, "", "in_progress"),
            ) + self._event(
                "response.content_part.added",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            )
        index, item_id, parts = self.text
        parts.append(text)
        return added + self._event(
            "response.output_text.delta",
            item_id=item_id,
            output_index=index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call_delta(self, call: JSON) -> bytes:
        function = call.get("function") or {}
        slot = self.calls.get(call.get("index", 0))
        added = b""
        if slot is None:
            index, item_id = len(self.output), new_id("fc")
            self.output.append(None)
            slot = self.calls[call.get("index", 0)] = [
                index,
                item_id,
                call.get("id") or new_id("call"),
                "",
                [],
            ]
            slot[3] = function.get("name") or ""
            item = function_call_item(item_id, slot[2], slot[3], "", "in_progress")
            added = self._event("response.output_item.added", output_index=index, item=item)
        elif function.get("name"):
            slot[3] += function["name"]
        arguments = function.get("arguments") or ""
        if not arguments:
            return added
        slot[4].append(arguments)
        return added + self._event(
            "response.function_call_arguments.delta", item_id=slot[1], output_index=slot[0], delta=arguments
        )

    def finish(self) -> bytes:
        """Close the open items and end with the whole response."""
        out: list[bytes] = []
        if self.text is not None:
            index, item_id, parts = self.text
            text = "".join(parts)
            part = {"type": "output_text", "text": text, "annotations": []}
            item = message_item(item_id, text)
            self.output[index] = item
            out += [
                self._event(
                    "response.output_text.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                ),
                self._event(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    part=part,
                ),
                self._event("response.output_item.done", output_index=index, item=item),
            ]
        for index, item_id, call_id, name, pieces in self.calls.values():
            arguments = "".join(pieces)
            item = function_call_item(item_id, call_id, name, arguments)
            self.output[index] = item
            out += [
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item_id,
                    output_index=index,
                    name=name,
                    arguments=arguments,
                ),
                self._event("response.output_item.done", output_index=index, item=item),
            ]
        status, incomplete = finish_status(self.finish_reason)
        response = self.response
        response.update(
            status=status,
            incomplete_details=incomplete,
            output=[item for item in self.output if item is not None],
            usage=self.usage,
        )
        if self.marking is not None:
            response["modelyard"] = self.marking
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(kind, response=response))
        return b"".join(out)

    def fail(self, error: JSON) -> bytes:
        """The upstream broke after the stream began: an ``error`` event, then ``response.failed``."""
        raw = error.get("error")
        details: JSON = raw if isinstance(raw, dict) else {}
        code, message = details.get("code") or "upstream_error", details.get("message") or "stream failed"
        self.response.update(
            status="failed",
            error={"code": code, "message": message},
            output=[item for item in self.output if item is not None],
            usage=self.usage,
        )
        return self._event("error", code=code, message=message, param=None) + self._event(
            "response.failed", response=self.response
        )
