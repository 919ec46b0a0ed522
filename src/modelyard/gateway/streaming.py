"""Streaming: open an upstream stream up to its first token (still retryable), then relay it to the client.

Nothing reaches the client before the first token, so failures until then go through the same retries
and fallbacks as plain calls. After it, the stream is committed: an upstream failure becomes an explicit
error event, and usage is metered from what arrived (estimated and flagged when the provider never said).
OpenAI-format upstreams are passed through as bytes as read; other API families arrive as chunk dicts and
are encoded here. What arrived together is written together, and nothing waits for the network unwritten.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from time import perf_counter
from typing import Protocol

import orjson

from modelyard.errors import UpstreamError, UpstreamStreamCut, UpstreamTimeout
from modelyard.gateway.metering import Outcome, RequestContext, RowFacts, attempt_row, stream_usage
from modelyard.gateway.recording import Recorder
from modelyard.gateway.redaction import StreamRestorer
from modelyard.gateway.targets import Target
from modelyard.providers.base import JSON, ChatCall, StreamMeter

DONE = b"data: [DONE]\n\n"


def sse(payload: JSON) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class ClientStream(Protocol):
    """What the HTTP layer sends once a stream's headers may go: every frame but the last through
    ``write``, the last returned (sent with the end of the body). ``close`` is for a stream that will
    never be pumped (the client left first): it records that and ends the upstream call."""

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes: ...

    async def close(self) -> None: ...


class Frames:
    """A stream whose frames are all known already (a cache hit, a cascade's checked answer).

    ``rejection``: why a cascade's answer failed validation after every attempt (None when it passed):
    known before the stream's headers go, so the HTTP layer marks them as it marks a whole answer."""

    __slots__ = ("frames", "rejection")

    def __init__(self, frames: list[bytes], rejection: str | None = None) -> None:
        self.frames = frames
        self.rejection = rejection

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes:
        body = b"".join(self.frames)
        if body:
            await write(body)
        return DONE

    async def close(self) -> None:
        return None


class Relay:
    """The client's SSE frames from an upstream stream. Usage and the attempt are metered at the end
    (the recorder writes the row) however it ends: complete, cut by the upstream (an explicit error event,
    never ``[DONE]``), or abandoned by the client (the upstream call is closed).

    Built before the attempts: :meth:`open` is their attempt function, and the target whose stream reached
    a first token is the one relayed. A plain object driving the writes, not an async generator: one layer
    fewer between the upstream's reads and the client's socket, and no event-loop hook per request."""

    __slots__ = (
        "_body",
        "_completion",
        "_ctx",
        "_facts",
        "_frames",
        "_head",
        "_log_content",
        "_meter",
        "_outcome",
        "_recorded",
        "_recorder",
        "_restorer",
        "_started",
        "_target",
        "_ttft_timeout",
        "_wants_usage",
    )

    # Set by ``open`` once a target's stream reached its first token.
    _frames: AsyncIterator[JSON | bytes]
    _head: list[JSON | bytes]  # what arrived up to and including the first output (role chunks first)
    _meter: StreamMeter
    _target: Target
    _started: float

    def __init__(
        self,
        ctx: RequestContext,
        body: JSON,
        outcome: Outcome,
        recorder: Recorder,
        facts: RowFacts,
        *,
        wants_usage: bool,
        log_content: bool,
        restorer: StreamRestorer | None,
        ttft_timeout: float | None,
    ) -> None:
        self._ctx, self._body, self._outcome = ctx, body, outcome
        self._recorder, self._facts = recorder, facts
        self._wants_usage, self._log_content = wants_usage, log_content
        self._restorer, self._ttft_timeout = restorer, ttft_timeout
        self._completion: list[str] = []
        self._recorded = False

    async def open(self, target: Target) -> Relay:
        """The attempt function: start ``target``'s stream and read up to its first token. Until then
        nothing has reached the client, so a failure here (including an error event right after the role
        chunk) can still be retried or fall back. The reads are here rather than in a helper coroutine,
        and call ``__anext__`` directly (an adapter's stream is its own iterator): fewer calls a request."""
        meter = StreamMeter()
        frames = target.adapter.stream(ChatCall(self._body, target.upstream_model, self._wants_usage), meter)
        head: list[JSON | bytes] = []
        try:
            while True:
                piece = await frames.__anext__()
                head.append(piece)
                if isinstance(piece, bytes):
                    if meter.started or meter.finish_reason or meter.usage:
                        break
                elif _has_output(piece) or _finished(piece):
                    break
        except StopAsyncIteration:
            pass
        except BaseException:  # a failure, or the time-to-first-token limit (open_in_time) cancelling it
            await frames.aclose()  # type: ignore[attr-defined]
            raise
        if not head:
            raise UpstreamStreamCut(f"{target.provider} sent an empty stream", provider=target.provider)
        self._target, self._frames, self._head, self._meter = target, frames, head, meter
        self._outcome.target = target
        self._started = perf_counter()
        return self

    async def open_in_time(self, target: Target) -> Relay:
        """:meth:`open` within the route's time-to-first-token limit (the attempt function when there is
        one): a target that sends no first token in time fails like any other attempt."""
        seconds = self._ttft_timeout
        try:
            async with asyncio.timeout(seconds):
                return await self.open(target)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{target.provider} sent no first token within {seconds}s", provider=target.provider
            ) from None

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes:
        frames = self._frames
        # Frames are held, not written, while the next one is already here (the upstream sent more in
        # the same read, or ended): a short answer then leaves in one write with the end of the body,
        # one system call instead of several. Nothing waits in ``held`` for the network.
        held: list[bytes] = []
        ended = False  # the frames ran to their end: the upstream call is over, nothing left to close
        outcome, meter, t0 = self._outcome, self._meter, self._ctx.t0
        # A byte run (OpenAI-format events) passes as read, timed here, unless there are pseudonyms to
        # restore or content to log: no call per network read. Anything else is framed by _frame.
        as_read = self._restorer is None and not self._log_content
        try:
            try:
                for piece in self._head:
                    if as_read and isinstance(piece, bytes):
                        if outcome.ttft_seconds is None and meter.started:
                            outcome.ttft_seconds = perf_counter() - t0
                        out: bytes | None = piece
                    else:
                        out = self._frame(piece)
                    if out:
                        held.append(out)
                while True:
                    if held and not getattr(frames, "ready", False):
                        await write(b"".join(held))
                        held.clear()
                    try:
                        piece = await frames.__anext__()  # not anext(): one builtin call fewer a read
                    except StopAsyncIteration:
                        ended = True
                        break
                    if as_read and isinstance(piece, bytes):
                        if outcome.ttft_seconds is None and meter.started:
                            outcome.ttft_seconds = perf_counter() - t0
                        out = piece
                    else:
                        out = self._frame(piece)
                    if out:
                        held.append(out)
            except UpstreamError as error:
                self._finish(False, error)
                return b"".join(held) + sse(error.to_body())
            self._finish(True)
            tail = self._restorer.tail() if self._restorer is not None else None
            return b"".join(held) + (DONE if tail is None else sse(tail) + DONE)
        finally:
            # A stream that ended is recorded and its upstream released already: the close chain (two
            # coroutines and the relay's, stream's and exchange's close) is only for the other ways out.
            if not (ended and self._recorded):
                await self.close()

    async def close(self) -> None:
        if not self._recorded:
            # The client went away (or the server is stopping): end the upstream call and record what
            # was produced so far, estimated where the provider never said.
            outcome = self._outcome
            outcome.client_cancelled = True
            outcome.status, outcome.error_kind = 499, "client_cancelled"
            self._finish(False)
        await self._frames.aclose()  # type: ignore[attr-defined]

    def _finish(self, completed: bool, error: UpstreamError | None = None) -> None:
        self._recorded = True
        outcome, meter = self._outcome, self._meter
        seconds = perf_counter() - self._started
        # A complete stream's own usage, as stream_usage() would return it, without the call (the common
        # case); anything else is topped up with estimates there.
        usage = meter.usage
        if not completed or usage is None:
            usage = stream_usage(meter, self._body, completed=completed)
        outcome.upstream_seconds += seconds
        outcome.usage, outcome.finish_reason = usage, meter.finish_reason
        outcome.upstream_model, outcome.tool_calls = meter.upstream_model, meter.tool_calls
        attempt_status = outcome.status
        if error is not None:
            # The client got 200 and the stream's head before the cut: the request's status says so (the
            # ledger's ``status`` is what the client got); ``error_kind`` marks the cut, the attempt row
            # carries the upstream failure, and the route no longer says the target served it.
            attempt_status, outcome.error_kind = error.status, error.kind
            route, served, _ = (outcome.route or "").rpartition("; served by ")
            if served:
                outcome.route = f"{route}; {self._target.public_model}: {error.kind} after the stream began"
        outcome.attempts.append(
            attempt_row(
                self._ctx,
                len(outcome.attempts) + 1,
                self._target,
                status=attempt_status,
                error_kind=outcome.error_kind,
                seconds=seconds,
                usage=usage,
                upstream_model=meter.upstream_model,
            )
        )
        if self._log_content:
            outcome.prompt = orjson.dumps(self._body.get("messages")).decode()
            outcome.completion = "".join(self._completion)
        self._recorder.record(self._ctx, self._facts, outcome)

    def _frame(self, piece: JSON | bytes) -> bytes | None:
        outcome = self._outcome
        if self._restorer is not None:
            piece = self._restorer.block(piece) if isinstance(piece, bytes) else self._restorer.chunk(piece)
        if isinstance(piece, bytes):
            # Already OpenAI SSE events, passed through as read.
            if outcome.ttft_seconds is None and self._meter.started:
                outcome.ttft_seconds = perf_counter() - self._ctx.t0
            if self._log_content:
                self._completion.append(_sse_text(piece))
            return piece
        if not piece.get("choices") and piece.get("usage") is not None and not self._wants_usage:
            return None  # the usage-only chunk we asked for to meter; the client did not
        if outcome.ttft_seconds is None and _has_output(piece):
            outcome.ttft_seconds = perf_counter() - self._ctx.t0
        if self._log_content:
            self._completion.append(_delta_text(piece))
        return sse(piece)


def _sse_text(block: bytes) -> str:
    """Content text of passed-through SSE events (only for workloads that log content)."""
    texts = []
    for line in block.split(b"\n"):
        if line.startswith(b"data: "):
            try:
                texts.append(_delta_text(orjson.loads(line[6:])))
            except orjson.JSONDecodeError:
                continue
    return "".join(texts)


def _finished(chunk: JSON) -> bool:
    return any(choice.get("finish_reason") for choice in chunk.get("choices") or ()) or not chunk.get(
        "choices"
    )


def _has_output(chunk: JSON) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def _delta_text(chunk: JSON) -> str:
    parts = []
    for choice in chunk.get("choices") or ():
        content = (choice.get("delta") or {}).get("content")
        if isinstance(content, str):
            parts.append(content)
    return "".join(parts)
