"""Streaming: open an upstream stream up to its first token (still retryable), then relay it to the client.

Nothing reaches the client before the first token, so failures until then go through the same retries
and fallbacks as plain calls. After it, the stream is committed: an upstream failure becomes an explicit
error event, and usage is metered from what arrived (estimated and flagged when the provider never said).
OpenAI-format upstreams are passed through as bytes (one write per upstream read); other API families
arrive as chunk dicts and are encoded here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter

import orjson

from modelyard.errors import UpstreamError, UpstreamStreamCut, UpstreamTimeout
from modelyard.gateway.attempts import Served
from modelyard.gateway.metering import Outcome, RequestContext, attempt_row, stream_usage
from modelyard.gateway.redaction import StreamRestorer
from modelyard.gateway.targets import Target
from modelyard.providers.base import JSON, ChatCall, StreamMeter

DONE = b"data: [DONE]\n\n"


def sse(payload: JSON) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


@dataclass(slots=True)
class Live:
    """A stream that produced its first chunk: the generator, that chunk, and its meter."""

    frames: AsyncIterator[JSON | bytes]
    #: What arrived up to and including the first output (role chunks come before it).
    head: list[JSON | bytes]
    meter: StreamMeter


def opener(body: JSON, wants_usage: bool, ttft_timeout: float | None) -> Callable[[Target], Awaitable[Live]]:
    """The attempt function for streams: open one target's stream up to its first token."""

    async def open_stream(target: Target) -> Live:
        """Start a stream and read up to its first token. Until then nothing has reached the client,
        so a failure here (including an error event right after the role chunk) can still be retried
        or fall back."""
        meter = StreamMeter()
        call = ChatCall(
            body=body, upstream_model=target.upstream_model, client_wants_stream_usage=wants_usage
        )
        frames = target.adapter.stream(call, meter)
        try:
            if ttft_timeout is None:
                head = await _read_to_first_token(frames, meter)
            else:
                async with asyncio.timeout(ttft_timeout):
                    head = await _read_to_first_token(frames, meter)
        except TimeoutError:
            await frames.aclose()  # type: ignore[attr-defined]
            raise UpstreamTimeout(
                f"{target.provider} sent no first token within {ttft_timeout}s", provider=target.provider
            ) from None
        except BaseException:
            await frames.aclose()  # type: ignore[attr-defined]
            raise
        if not head:
            raise UpstreamStreamCut(f"{target.provider} sent an empty stream", provider=target.provider)
        return Live(frames, head, meter)

    return open_stream


async def relay(
    ctx: RequestContext,
    body: JSON,
    outcome: Outcome,
    served: Served[Live],
    *,
    wants_usage: bool,
    log_content: bool,
    restorer: StreamRestorer | None,
    record: Callable[[], None],
) -> AsyncIterator[bytes]:
    """The client's SSE frames from a stream that has begun. Usage and the attempt are metered at the end
    (``record`` writes the row) however it ends: complete, cut by the upstream (an explicit error event,
    never ``[DONE]``), or abandoned by the client (the upstream call is closed)."""
    live, target = served.result, served.target
    meter = live.meter
    outcome.target = target
    completion: list[str] = []
    started = perf_counter()
    recorded = False

    def finish(completed: bool, error: UpstreamError | None = None) -> None:
        seconds = perf_counter() - started
        usage = stream_usage(meter, body, completed=completed)
        outcome.upstream_seconds += seconds
        outcome.usage, outcome.finish_reason = usage, meter.finish_reason
        outcome.upstream_model = meter.upstream_model
        if error is not None:
            outcome.status, outcome.error_kind = error.status, error.kind
        outcome.attempts.append(
            attempt_row(
                ctx,
                len(outcome.attempts) + 1,
                target,
                status=outcome.status,
                error_kind=outcome.error_kind,
                seconds=seconds,
                usage=usage,
                upstream_model=meter.upstream_model,
            )
        )
        if log_content:
            outcome.prompt = orjson.dumps(body.get("messages")).decode()
            outcome.completion = "".join(completion)
        record()

    def frame(piece: JSON | bytes) -> bytes | None:
        if restorer is not None:
            piece = restorer.block(piece) if isinstance(piece, bytes) else restorer.chunk(piece)
        if isinstance(piece, bytes):
            # Already OpenAI SSE events, passed through as read (one write per upstream read).
            if outcome.ttft_seconds is None and meter.output_chars:
                outcome.ttft_seconds = perf_counter() - ctx.t0
            if log_content:
                completion.append(_sse_text(piece))
            return piece
        if not piece.get("choices") and piece.get("usage") is not None and not wants_usage:
            return None  # the usage-only chunk we asked for to meter; the client did not
        if outcome.ttft_seconds is None and _has_output(piece):
            outcome.ttft_seconds = perf_counter() - ctx.t0
        if log_content:
            completion.append(_delta_text(piece))
        return sse(piece)

    try:
        try:
            head = b"".join(f for f in map(frame, live.head) if f)
            if head:
                yield head
            async for piece in live.frames:
                out = frame(piece)
                if out:
                    yield out
        except UpstreamError as error:
            finish(False, error)
            recorded = True
            yield sse(error.to_body())
            return
        finish(True)
        recorded = True
        tail = restorer.tail() if restorer is not None else None
        if tail is not None:
            yield sse(tail)
        yield DONE
    finally:
        if not recorded:
            # The client went away (or the server is stopping): end the upstream call and record what
            # was produced so far, estimated where the provider never said.
            outcome.client_cancelled = True
            outcome.status, outcome.error_kind = 499, "client_cancelled"
            finish(False)
        await live.frames.aclose()  # type: ignore[attr-defined]


async def _read_to_first_token(frames: AsyncIterator[JSON | bytes], meter: StreamMeter) -> list[JSON | bytes]:
    head: list[JSON | bytes] = []
    async for piece in frames:
        head.append(piece)
        if isinstance(piece, bytes):
            if meter.output_chars or meter.finish_reason or meter.usage:
                break
        elif _has_output(piece) or _finished(piece):
            break
    return head


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
