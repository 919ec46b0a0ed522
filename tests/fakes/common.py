"""What every fake provider server shares: the scripted scenario and the record of what it received.

Each fake in this folder is a real aiohttp server on loopback that speaks one provider's published wire
format (JSON bodies, SSE event order, error bodies). Tests pick a :data:`Scenario`; the fake answers it in
its own format, streaming or not, and records every request so tests can assert on what went upstream.

The scenarios and the figures each must produce, *after* the adapter normalises them to OpenAI format:

================  =====================================================================================
text              content "Hello, world!", finish "stop"; usage input 11, output 4
tool_call         one tool call get_weather({"city": "Paris"}), id "call_1", finish "tool_calls";
                  usage input 20, output 9
json              content '{"answer": 42}', finish "stop"; usage input 15, output 6
cached            content "Cached hello", finish "stop"; usage input 100 of which cached (read) 60 and
                  (Anthropic only) cache write 10; output 3
reasoning         content "42", finish "stop"; usage input 10, output 50 of which reasoning 46
                  (Anthropic does not report thinking tokens apart: its reasoning figure is 0)
length            content "Hello", finish "length"; usage input 11, output 2
rate_limited      HTTP 429, the provider's error body, header retry-after: 7
overloaded        the provider's overload status (OpenAI 503, Anthropic 529, Gemini 503) and error body
server_error      HTTP 500 and the provider's error body
bad_request       HTTP 400 and the provider's error body with the message "bad things"
auth_error        HTTP 401 and the provider's error body
stream_cut        streaming: the first text delta "Hel" then the connection is closed with no terminal
                  event; non-streaming: HTTP 200 with a truncated (malformed) JSON body
stream_error      streaming: the first text delta "Hel" then the provider's in-stream error
                  (Anthropic: an `error` event, overloaded_error); others behave as stream_cut
slow              as text, after sleeping ``FakeState.delay_s`` before the response headers
embedding         (embeddings endpoints) one 3-dimensional vector per input, usage input 2 per input
echo              (OpenAI fake) answers with the last user message, as the upstream received it
verbose           (OpenAI and Anthropic fakes) a model that writes until it is stopped: content
                  "Hello, world!", finish "length" (Anthropic "max_tokens", Responses "incomplete"), output
                  tokens = the output bound the request sent (max_completion_tokens, max_tokens,
                  max_output_tokens), or :data:`UNBOUNDED_OUTPUT_TOKENS` when it sent none
================  =====================================================================================
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict

Scenario = Literal[
    "text",
    "tool_call",
    "json",
    "cached",
    "reasoning",
    "length",
    "rate_limited",
    "overloaded",
    "server_error",
    "bad_request",
    "auth_error",
    "stream_cut",
    "stream_error",
    "slow",
    "embedding",
    "echo",
    "verbose",
]

#: What the ``verbose`` scenario writes when the request sets no output bound: a model running to its own
#: limit (long reasoning, an agent loop), far past any default a budget reservation would assume.
UNBOUNDED_OUTPUT_TOKENS = 100_000


def verbose_output_tokens(body: Any, *fields: str) -> int:
    """The ``verbose`` scenario's output tokens: the first of ``fields`` the request sets."""
    for name in fields:
        value = body.get(name) if isinstance(body, dict) else None
        if isinstance(value, int):
            return value
    return UNBOUNDED_OUTPUT_TOKENS


#: Every scenario's expected result after normalisation, shared by the conformance suite.
EXPECTED_TEXT = {
    "text": "Hello, world!",
    "json": '{"answer": 42}',
    "cached": "Cached hello",
    "reasoning": "42",
    "length": "Hello",
    "slow": "Hello, world!",
    "verbose": "Hello, world!",
}
EXPECTED_USAGE = {
    # scenario: (input, output, cached_input, cache_write, reasoning)
    "text": (11, 4, 0, 0, 0),
    "slow": (11, 4, 0, 0, 0),
    "tool_call": (20, 9, 0, 0, 0),
    "json": (15, 6, 0, 0, 0),
    "cached": (100, 3, 60, 0, 0),
    "reasoning": (10, 50, 0, 0, 46),
    "length": (11, 2, 0, 0, 0),
}
EXPECTED_FINISH = {"tool_call": "tool_calls", "length": "length"}


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    #: Case-insensitive, as HTTP header names are (clients differ in the case they send).
    headers: CIMultiDict[str]
    body: Any


@dataclass
class FakeState:
    scenario: Scenario = "text"
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    #: Slow requests whose caller hung up while this server was still "generating" (the gateway must
    #: close the upstream connection when its own client goes away).
    abandoned: int = 0

    async def record(self, request: web.Request) -> Any:
        body = await request.json() if request.can_read_body else None
        self.received.append(
            Received(request.method, request.path, dict(request.query), CIMultiDict(request.headers), body)
        )
        if self.scenario == "slow" and self.delay_s:
            await asyncio.sleep(self.delay_s)
            if request.transport is None or request.transport.is_closing():
                self.abandoned += 1
        return body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port; yield its base URL (``http://127.0.0.1:PORT``)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def cut_connection(response: web.StreamResponse, request: web.Request) -> None:
    """Close the socket under a streaming response, as a crashed upstream would (no terminal event)."""
    await response.write(b"")
    transport = request.transport
    if transport is not None:
        transport.abort()


#: Where every fake app keeps its FakeState (``app[STATE]``); an AppKey, as aiohttp asks.
STATE = web.AppKey("state", FakeState)
