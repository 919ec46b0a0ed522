"""A finished answer replayed as an OpenAI stream: for cache hits and for cascades, which must see the
whole answer before the client may.

A cascade's answer that failed validation after every attempt is marked in the stream as in a whole
answer (gateway/unvalidated.py): the chunk that carries ``finish_reason`` — the one chunk every client
reads to the end of, with or without ``include_usage`` — gets the same top-level ``modelyard`` member.
SDKs keep unknown chunk members (openai-python's ``model_extra``), and ``finish_reason`` stays the
model's, so no typed client breaks. (The headers are marked too: the answer is known before they go.)"""

from __future__ import annotations

import time

import orjson

from modelyard.gateway.unvalidated import marked_body
from modelyard.providers.base import JSON, Usage


def _frame(payload: JSON) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def answer_frames(
    body: JSON, usage: Usage | None, include_usage: bool, *, rejection: str | None = None
) -> list[bytes]:
    """SSE frames (without ``[DONE]``) carrying ``body``'s message: role, content, tool calls, finish;
    the finish chunk marked when ``rejection`` says the answer failed validation."""
    base = {
        "id": body.get("id", "chatcmpl-modelyard"),
        "object": "chat.completion.chunk",
        "created": body.get("created", int(time.time())),
        "model": body.get("model", ""),
    }
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    frames = [
        _frame(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            }
        )
    ]
    if message.get("content"):
        frames.append(
            _frame(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": {"content": message["content"]}, "finish_reason": None}
                    ],
                }
            )
        )
    calls = message.get("tool_calls") or []
    if calls:
        deltas = [{"index": i, **call} for i, call in enumerate(calls)]
        frames.append(
            _frame(
                {**base, "choices": [{"index": 0, "delta": {"tool_calls": deltas}, "finish_reason": None}]}
            )
        )
    finish: JSON = {
        **base,
        "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}],
    }
    frames.append(_frame(finish if rejection is None else marked_body(finish, rejection)))
    if include_usage:
        frames.append(_frame({**base, "choices": [], "usage": (usage or Usage()).to_openai()}))
    return frames
