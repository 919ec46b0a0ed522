"""The HTTP client every adapter shares: pooled keep-alive connections per provider, errors mapped once.

The transport is :mod:`modelyard.transport.http1` (httptools framing under a bare asyncio protocol), chosen
by measurement: in a minimal forwarder on one core here it costs ~20 µs of CPU per upstream POST, against
~170 µs for aiohttp's client, ~75 µs for pyreqwest (which also keeps a cancelled request running) and ~1 ms
for httpx. Transport failures and non-2xx answers become :mod:`modelyard.errors` types here, so adapters
only translate bodies. The provider's credential is scrubbed from every message that could reach a client.
Where a call goes is the configured URL alone: no proxy from the environment, no redirect followed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import orjson

from modelyard.config.schema import ProviderConfig
from modelyard.errors import (
    UpstreamError,
    UpstreamStreamCut,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from modelyard.transport.http1 import ConnectError, Exchange, Pool, ProtocolError, StreamCut, request_head

#: What the transport raises when a call fails on the way (OSError covers refused and reset sockets).
TRANSPORT_ERRORS = (TimeoutError, ConnectError, StreamCut, ProtocolError, OSError)
#: Request heads kept per client (one per endpoint URL and header set: a handful per provider).
HEAD_CACHE_SIZE = 256

#: The W3C ``traceparent`` header line (``traceparent: 00-...`` and its CRLF) every upstream call of the current
#: request carries, set by the gateway's tracing (``gateway/tracing.py``) when tracing is on. A context
#: variable, so that no adapter signature changes; appended to the cached request head rather than part
#: of its key, so a per-request header does not defeat the head cache.
UPSTREAM_TRACEPARENT: ContextVar[bytes | None] = ContextVar("modelyard_upstream_traceparent", default=None)


def error_message_of(body: Any) -> str | None:
    """``error.message`` — the shape OpenAI, Anthropic and Gemini error bodies all share."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return None


def stream_failure(provider: str, exc: BaseException) -> UpstreamError:
    """What a transport failure (one of :data:`TRANSPORT_ERRORS`) becomes once a streamed answer had
    begun: the client must learn that its stream is incomplete. A stall is :class:`UpstreamTimeout`,
    anything else :class:`UpstreamStreamCut`."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"{provider} stalled mid-stream", provider=provider)
    return UpstreamStreamCut(f"{provider} stream broke off ({type(exc).__name__})", provider=provider)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date; providers send seconds, so we do not guess the clock
    return seconds if seconds >= 0 else None


class UpstreamClient:
    """POSTs JSON to one provider and maps every failure to an :class:`UpstreamError`."""

    def error_message(self, body: Any) -> str | None:
        """The message of an error body (OpenAI's ``error.message``). A client for an API that words its
        errors otherwise overrides this and keeps the rest of the failure handling."""
        return error_message_of(body)

    def __init__(self, provider: str, config: ProviderConfig, secret: str | None = None) -> None:
        self.provider = provider
        self.config = config
        self._secret = secret
        self._pools: dict[str, Pool] = {}
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Pool, bytes]] = {}

    def scrub(self, text: str) -> str:
        """Remove the credential from ``text`` (some providers echo part of a bad key)."""
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "[redacted]")
        return text

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._heads.clear()

    def _prepare(self, url: str, headers: Mapping[str, str]) -> tuple[Pool, bytes]:
        """The pool for ``url``'s origin and the request head, both built once per endpoint."""
        key = (url, tuple(headers.items()))
        found = self._heads.get(key)
        if found is None:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            pool = self._pools.get(origin)
            if pool is None:
                t = self.config.timeouts
                pool = self._pools[origin] = Pool(
                    origin,
                    limit=self.config.max_connections,
                    connect_timeout_s=t.connect,
                    request_timeout_s=t.total,
                )
            found = (pool, request_head("POST", url, headers))
            if len(self._heads) < HEAD_CACHE_SIZE:
                self._heads[key] = found
        return found

    def _failure(self, status: int, raw: bytes, headers: Mapping[str, str]) -> UpstreamError:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        message = self.error_message(body) or raw[:200].decode("utf-8", "replace") or f"HTTP {status}"
        return upstream_error_for_status(
            self.provider,
            status,
            self.scrub(message),
            retry_after=parse_retry_after(headers.get("retry-after")),
        )

    def _transport_error(self, exc: BaseException) -> UpstreamError:
        # Our messages name the provider only: the transport's may carry its address.
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout(f"{self.provider} did not answer in time", provider=self.provider)
        if isinstance(exc, ConnectError):
            return UpstreamUnavailable(
                f"cannot connect to {self.provider}", provider=self.provider, status=503, retryable=True
            )
        return UpstreamUnavailable(
            f"{self.provider} connection failed: {type(exc).__name__}", provider=self.provider, retryable=True
        )

    async def post_json(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[bytes, Any]:
        """POST and return ``(raw body, parsed JSON)`` of a 2xx answer."""
        pool, head = self._prepare(url, headers)
        traceparent = UPSTREAM_TRACEPARENT.get()
        if traceparent is not None:
            head += traceparent
        try:
            exchange = await pool.open(head, body, read_timeout_s=self.config.timeouts.read)
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        try:
            raw = await exchange.read()  # gives the connection back once the body has ended
        except BaseException as exc:  # broken, timed out or cancelled: closed, not given back
            exchange.close()
            if isinstance(exc, TRANSPORT_ERRORS):
                raise self._transport_error(exc) from None
            raise
        response = exchange.response
        if response.status >= 300:
            raise self._failure(response.status, raw, response.headers)
        try:
            return raw, orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable(
                f"{self.provider} sent a malformed JSON body", provider=self.provider, retryable=True
            ) from None

    async def open_stream(self, url: str, body: bytes, headers: Mapping[str, str]) -> UpstreamStream:
        """POST and return the 2xx streaming answer, once its head is in. A failure until then (status,
        connection) is raised here; after it, :meth:`UpstreamStream.next_piece` maps its own."""
        return UpstreamStream(self.provider, await self.open_exchange(url, body, headers))

    async def open_exchange(self, url: str, body: bytes, headers: Mapping[str, str]) -> Exchange:
        """:meth:`open_stream` without its wrapper, for a relay that reads the exchange itself (one object
        and a call per read fewer): it maps the transport's failures with :func:`stream_failure`."""
        pool, head = self._prepare(url, headers)
        traceparent = UPSTREAM_TRACEPARENT.get()
        if traceparent is not None:
            head += traceparent
        try:
            exchange = await pool.open(head, body, read_timeout_s=self.config.timeouts.read)
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        response = exchange.response
        if response.status >= 300:
            try:
                raw = await exchange.read()
            except TRANSPORT_ERRORS as exc:
                raise self._transport_error(exc) from None
            finally:
                exchange.close()
            raise self._failure(response.status, raw, response.headers)
        return exchange

    async def stream(self, url: str, body: bytes, headers: Mapping[str, str]) -> AsyncGenerator[bytes, None]:
        """:meth:`open_stream` as an async generator of its pieces; closing it closes the connection."""
        upstream = await self.open_stream(url, body, headers)
        try:
            while (piece := await upstream.next_piece()) is not None:
                yield piece
        finally:
            upstream.close()


class UpstreamStream:
    """A 2xx streaming answer being read, one piece per network read, transport failures mapped.

    A plain object rather than an async generator: every async generator's first step goes through the
    event loop's bookkeeping hooks, a cost paid per request on the streaming hot path."""

    __slots__ = ("_exchange", "provider")

    def __init__(self, provider: str, exchange: Exchange) -> None:
        self.provider = provider
        self._exchange = exchange

    @property
    def ready(self) -> bool:
        """Whether :meth:`next_piece` answers without waiting for the network."""
        return self._exchange.ready

    async def next_piece(self) -> bytes | None:
        """The next piece of the body; None at its end. The answer had begun, so whatever breaks, the
        client must learn that its stream is incomplete: a stall is :class:`UpstreamTimeout`, anything else
        :class:`UpstreamStreamCut`."""
        try:
            return await self._exchange.next_piece()
        except TRANSPORT_ERRORS as exc:
            raise stream_failure(self.provider, exc) from None

    def close(self) -> None:
        """Done with the answer: a connection read to its end goes back to the pool, any other is closed
        (which is how a client that went away stops the upstream call)."""
        self._exchange.close()
