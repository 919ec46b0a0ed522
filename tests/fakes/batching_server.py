"""A fake continuous-batching inference server (vLLM-like) on loopback, with a known true capacity.

It speaks OpenAI's streaming chat format (``chat.completion.chunk`` SSE events, a usage chunk with empty
``choices`` when ``stream_options.include_usage`` is set, then ``data: [DONE]``) and ``GET /v1/models``.

The engine runs in steps. At each step's start it admits waiting sequences up to ``max_batch``; a step
of batch B lasts ``step_base_s + step_per_seq_s * B`` and gives every running sequence one token. So a
sequence's token rate falls as the batch grows, aggregate throughput saturates at ``max_batch`` at
:attr:`BatchingParams.capacity_tokens_per_s`, and beyond ``max_batch`` concurrent requests the rest queue,
so time to first token grows with the queue. Steps are scheduled on absolute deadlines, so timer jitter
does not erode the capacity. Prompt tokens are counted as one per word plus ``prompt_overhead`` (a chat
template). Answers always run to ``max_tokens`` (EOS is not simulated).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.common import serve_app

CREATED = 1_763_900_000


@dataclass(frozen=True)
class BatchingParams:
    max_batch: int = 8
    step_base_s: float = 0.004
    step_per_seq_s: float = 0.0005
    prompt_overhead: int = 7
    model: str = "fake-org/Fake-Llama-8B"
    owned_by: str = "vllm"
    #: Send the usage chunk when asked (a server that never does is one of the bad inputs).
    usage: bool = True
    #: Accept vLLM's ``ignore_eos``; OpenAI proper rejects unknown parameters with a 400.
    accepts_ignore_eos: bool = True

    def step_s(self, batch: int) -> float:
        return self.step_base_s + self.step_per_seq_s * batch

    @property
    def instant(self) -> bool:
        """No engine at all: every answer is written at once (the load generator's own benchmark)."""
        return self.step_base_s == 0 and self.step_per_seq_s == 0

    @property
    def capacity_tokens_per_s(self) -> float:
        """The true aggregate output rate at full batch: the most this server can ever deliver."""
        return self.max_batch / self.step_s(self.max_batch)


@dataclass(eq=False)
class _Sequence:
    remaining: int
    tokens: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)
    cancelled: bool = False


class BatchingEngine:
    """The step loop: admits, steps and emits one token per running sequence per step."""

    def __init__(self, params: BatchingParams) -> None:
        self.params = params
        self.waiting: deque[_Sequence] = deque()
        self.running: list[_Sequence] = []
        self._wake = asyncio.Event()
        self.max_batch_seen = 0

    def submit(self, remaining: int) -> _Sequence:
        seq = _Sequence(remaining)
        self.waiting.append(seq)
        self._wake.set()
        return seq

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            self._admit()
            if not self.running:
                self._wake.clear()
                await self._wake.wait()
                next_at = loop.time()
                continue
            self.max_batch_seen = max(self.max_batch_seen, len(self.running))
            # An absolute schedule: a late wake-up shortens the next sleep instead of losing capacity.
            next_at = max(next_at + self.params.step_s(len(self.running)), loop.time() - 0.05)
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            for seq in self.running:
                seq.remaining -= 1
                seq.tokens.put_nowait(seq.remaining)
                if seq.remaining == 0:
                    seq.tokens.put_nowait(None)
            self.running = [s for s in self.running if s.remaining > 0 and not s.cancelled]

    def _admit(self) -> None:
        self.running = [s for s in self.running if not s.cancelled]
        while self.waiting and len(self.running) < self.params.max_batch:
            seq = self.waiting.popleft()
            if not seq.cancelled:
                self.running.append(seq)


ENGINE = web.AppKey("engine", BatchingEngine)
PARAMS = web.AppKey("params", BatchingParams)


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": CREATED, "model": model}
    return b"data: " + orjson.dumps({**body, "choices": [choice]}) + b"\n\n"


def _usage_chunk(model: str, prompt: int, completion: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": CREATED, "model": model}
    return b"data: " + orjson.dumps({**body, "choices": [], "usage": usage}) + b"\n\n"


def _validate(params: BatchingParams, body: Any) -> web.Response | None:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "'messages' is a required property", "BadRequestError")
    if body.get("model") != params.model:
        return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "404")
    if "ignore_eos" in body and not params.accepts_ignore_eos:
        return _error(400, "Unrecognized request argument supplied: ignore_eos", "invalid_request_error")
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    params = request.app[PARAMS]
    body = orjson.loads(await request.read())
    failure = _validate(params, body)
    if failure is not None:
        return failure
    words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
    prompt_tokens = words + params.prompt_overhead
    max_tokens = int(body.get("max_tokens") or 16)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and params.usage
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    model = params.model
    if params.instant:
        parts = [_chunk(model, {"role": "assistant", "content": ""})]
        parts += [_chunk(model, {"content": " tok"}) for _ in range(max_tokens)]
        parts.append(_chunk(model, {}, "length"))
        if include_usage:
            parts.append(_usage_chunk(model, prompt_tokens, max_tokens))
        await response.write(b"".join(parts) + b"data: [DONE]\n\n")
        return response
    seq = request.app[ENGINE].submit(max_tokens)
    try:
        first = True
        while (await seq.tokens.get()) is not None:
            delta = {"role": "assistant", "content": " tok"} if first else {"content": " tok"}
            await response.write(_chunk(model, delta))
            first = False
    except ConnectionResetError:
        return response  # the client went away (a benchmark stopped with Ctrl-C): free the batch slot
    finally:
        seq.cancelled = True
    tail = _chunk(model, {}, "length")
    if include_usage:
        tail += _usage_chunk(model, prompt_tokens, max_tokens)
    await response.write(tail + b"data: [DONE]\n\n")
    return response


async def models(request: web.Request) -> web.Response:
    params = request.app[PARAMS]
    entry = {"id": params.model, "object": "model", "created": CREATED, "owned_by": params.owned_by}
    return web.json_response({"object": "list", "data": [entry]})


def create_app(params: BatchingParams) -> web.Application:
    app = web.Application()
    app[PARAMS] = params
    app[ENGINE] = BatchingEngine(params)

    async def engine_task(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.ensure_future(app[ENGINE].run())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(engine_task)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    return app


@contextmanager
def serving_in_thread(app: web.Application) -> Iterator[str]:
    """Run ``app`` on its own event loop in a thread (for synchronous callers such as click's CliRunner)."""
    ready: queue.Queue[str] = queue.Queue()
    loop = asyncio.new_event_loop()
    stopped = asyncio.Event()

    async def main() -> None:
        async with serve_app(app) as url:
            ready.put(url)
            await stopped.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield ready.get(timeout=10)
    finally:
        loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout=10)
        loop.close()
