"""A chat stream retold in another API's events (Responses, Anthropic Messages) for the client.

The gateway streams Chat Completions frames (``data: {chunk}``; ``data: [DONE]`` at a clean end; a
``data: {"error": ...}`` event when the upstream broke after the first token). :class:`TranslatedStream`
wraps that :class:`~modelyard.gateway.streaming.ClientStream`, parses its frames, and writes what a
:class:`Translator` makes of them: the events that open the stream, one run per chunk, and the events
that close it cleanly or after a failure. Metering and recording stay the inner stream's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson

from modelyard.gateway.streaming import ClientStream
from modelyard.providers.base import JSON


class Translator(Protocol):
    def start(self) -> bytes: ...

    def chunk(self, chunk: JSON) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, error: JSON) -> bytes: ...


class TranslatedStream:
    __slots__ = ("_ended", "_inner", "_pending", "_translator")

    def __init__(self, inner: ClientStream, translator: Translator) -> None:
        self._inner, self._translator = inner, translator
        self._pending = b""
        self._ended = False

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes:
        await write(self._translator.start())

        async def translated(frames: bytes) -> None:
            out = self._translate(frames)
            if out:
                await write(out)

        last = await self._inner.pump(translated)
        tail = self._translate(last)
        if not self._ended:  # the chat stream ended without [DONE] or an error event: say it failed
            cut = {
                "error": {"code": "upstream_stream_cut", "message": "the stream ended before it was complete"}
            }
            tail += self._translator.fail(cut)
        return tail

    async def close(self) -> None:
        await self._inner.close()

    def _translate(self, frames: bytes) -> bytes:
        data = self._pending + frames
        end = data.rfind(b"\n\n") + 2
        if end < 2:
            self._pending = data
            return b""
        self._pending = data[end:]
        out: list[bytes] = []
        for block in data[: end - 2].split(b"\n\n"):
            payload = b"\n".join(line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:"))
            if not payload:
                continue
            if payload == b"[DONE]":
                self._ended = True
                out.append(self._translator.finish())
                continue
            chunk = orjson.loads(payload)
            if "error" in chunk:
                self._ended = True
                out.append(self._translator.fail(chunk))
            else:
                out.append(self._translator.chunk(chunk))
        return b"".join(out)
