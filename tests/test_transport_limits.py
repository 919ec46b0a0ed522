"""Hostile clients against the gateway's HTTP server (issue 13, rows 1-5 and the server's smaller items),
each attack reproduced over loopback or fed to the protocol object, bounded in bytes and time; the
timeouts are made small through :class:`Limits`."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator

import orjson
import pytest

from modelyard.http.app import refusal
from modelyard.transport.limits import RESERVED_FDS, Limits, connection_cap, raise_fd_limit
from modelyard.transport.server import Server
from tests.transport_support import LIMIT, drive, echo, is_openai_error, read_answers

FAST = Limits(idle_timeout_s=0.2, head_timeout_s=0.2, body_timeout_s=0.2, write_timeout_s=0.3)


@contextlib.asynccontextmanager
async def serving(limits: Limits = FAST) -> AsyncIterator[tuple[Server, int]]:
    server = Server(echo, refusal, LIMIT, limits)
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.close(1.0)


async def send_until_answered(port: int, first: bytes, filler: bytes, budget: int) -> tuple[int, bytes]:
    """Send ``first`` then ``filler`` again and again (never ending the head) until the server answers
    or closes, or ``budget`` bytes went; returns (bytes sent, what the server said)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    writer.write(first)
    answer = b""
    async with asyncio.timeout(10):
        while sent < budget:
            try:
                writer.write(filler)
                await writer.drain()
            except ConnectionError:
                break
            sent += len(filler)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.001):
                    answer = await reader.read(65536)
            if answer:
                break
        with contextlib.suppress(ConnectionError):
            answer += await reader.read()
    writer.close()
    return sent, answer


# -- row 1: a head that never ends ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "status"),
    [(b"GET /", 414), (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ", 431)],
    ids=["url", "header-value"],
)
async def test_a_head_that_never_ends_is_refused_while_it_arrives(first: bytes, status: int) -> None:
    async with serving() as (_, port):
        sent, answer = await send_until_answered(port, first, b"a" * 16384, budget=8 << 20)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:80]
    assert sent < 2 << 20, f"{sent} bytes of one head were taken before the refusal"
    assert is_openai_error(answer.partition(b"\r\n\r\n")[2])


async def test_a_head_dribbled_a_byte_per_read_is_refused_within_the_read_budget() -> None:
    reads = [b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "] + [b"v"] * 5000
    driven = await drive(reads)
    (answer,) = read_answers(bytes(driven.transport.out)).done
    assert answer.status == 431 and driven.transport.closed
    # Each read counts 64 bytes: the parser saw about 1,024 of them, not 5,000.
    assert driven.connection._head_fed <= Limits().max_head_bytes + 64


# -- row 2: blank lines forever ------------------------------------------------------------------------


async def test_a_connection_sending_only_blank_lines_is_closed_as_idle() -> None:
    async with serving() as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        closed = False
        async with asyncio.timeout(5):
            for _ in range(100):  # 5 s of CRLF every 50 ms, 25x the idle timeout
                try:
                    writer.write(b"\r\n")
                    await writer.drain()
                except ConnectionError:
                    closed = True
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        if await reader.read(100) == b"":
                            closed = True
                            break
        writer.close()
    assert closed, "blank lines kept the connection alive"


# -- row 3: a connection cap and the open-file limit ---------------------------------------------------


async def test_beyond_the_cap_new_connections_get_503_and_held_ones_keep_working() -> None:
    limits = Limits(max_connections=4)
    async with serving(limits) as (server, port):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            refused = await reader.read()
        writer.close()
        r0, w0 = held[0]
        w0.write(b"GET /still-here HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            head = await r0.readuntil(b"\r\n\r\n")
        for _, w in held:
            w.close()
        assert len(server.connections) <= 4
    assert refused.startswith(b"HTTP/1.1 503 ") and b"Connection: close" in refused
    assert head.startswith(b"HTTP/1.1 200 ")


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 1024:
        pytest.skip("no room above the default soft limit here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        assert raise_fd_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, resource.getrlimit(0)[0]), hard))


@pytest.mark.parametrize(
    ("max_connections", "fds", "cap"),
    [(10_000, 1024, (1024 - RESERVED_FDS) // 2), (10_000, 1 << 20, 10_000), (5, 1 << 20, 5), (10, 100, 1)],
)
def test_the_cap_leaves_a_file_for_each_upstream_connection(max_connections: int, fds: int, cap: int) -> None:
    assert connection_cap(Limits(max_connections=max_connections), fds) == cap


# -- row 5: a valid request followed by what the parser refuses ----------------------------------------

VALID = b"GET /first HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("raw", "then"),
    [
        # curl --http2 http://...: answered over HTTP/1.1, the upgrade ignored (nginx), keep-alive goes on
        (
            VALID
            + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n",
            200,
        ),
        (
            VALID
            + b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a2V5\r\n\r\n\x81\x05hello",
            400,
        ),
        (VALID + b"Connection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: x\r\n\r\n", None),
        (VALID + b"Connection: close\r\n\r\n\x00\x01garbage", None),
        (VALID + b"\r\nNOT HTTP AT ALL\r\n\r\n", 400),
        (
            VALID
            + b"\r\nGET /second HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
    ],
    ids=["h2c", "websocket", "after-close", "garbage-after-close", "malformed-next", "smuggling-next"],
)
@pytest.mark.parametrize("over", ["loopback", "one-read"])
async def test_a_valid_request_is_answered_before_what_follows_it_is_refused(
    raw: bytes, then: int | None, over: str
) -> None:
    if over == "loopback":
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw)
            async with asyncio.timeout(5):
                out = await reader.read() if then != 200 else await reader.read(65536)
            writer.close()
    else:
        out = bytes((await drive([raw])).transport.out)
    answers = read_answers(out)
    assert answers.done, f"no answer at all: {out!r}"
    first = answers.done[0]
    assert first.status == 200 and orjson.loads(first.body)["path"] == "/first"
    if then is None:
        assert len(answers.done) == 1 and first.headers["connection"] == "close"
    else:
        assert answers.done[1].status == then and len(answers.done) == 2
        if then != 200:
            assert answers.done[1].headers["connection"] == "close" and is_openai_error(answers.done[1].body)


# -- smaller items -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /x HTTP/1.1\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /x HTTP/1.0\r\n\r\n", 200),
        (b"GET http://x/y HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400),
        (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
    ids=[
        "no-host",
        "two-hosts",
        "http10-no-host",
        "absolute-form",
        "h2-prior-knowledge",
        "connect",
        "asterisk",
    ],
)
async def test_request_targets_and_host_headers_as_nginx_checks_them(raw: bytes, status: int) -> None:
    driven = await drive([raw])
    (answer,) = read_answers(bytes(driven.transport.out)).done
    assert answer.status == status
    if status >= 400:
        assert is_openai_error(answer.body) and driven.transport.closed


async def test_a_body_announced_past_the_discard_budget_is_answered_413_and_the_connection_closed() -> None:
    # Found by the fuzzer: the 413 said "Connection: close" while the server kept waiting for 99 MB to drop.
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"
    driven = await drive([raw])
    answers = read_answers(bytes(driven.transport.out), driven.transport.closed)
    assert [a.status for a in answers.done] == [413]
    assert driven.transport.closed
