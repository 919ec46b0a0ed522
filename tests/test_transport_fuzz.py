"""The gateway's HTTP server under generated input: request heads and bodies (valid, malformed, hostile),
several to a connection, split at random read boundaries and fed to the protocol object.

Whatever arrives: no exception escapes; the output is well-formed HTTP/1.1, each error an OpenAI-shaped
JSON error; what a connection holds stays within its limits; a connection that announced its close is
closed. Valid requests, however split, are all answered, in order, on a connection that stays open."""

from __future__ import annotations

import asyncio
import itertools

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelyard.transport.limits import Limits
from modelyard.transport.server import Request, Response, Streamed
from tests.transport_support import LIMIT, drive, is_openai_error, read_answers

LIMITS = Limits()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Frames:
    async def pump(self, write: object) -> bytes:
        await write(b"data: 1\n\n")  # type: ignore[operator]
        return b"data: [DONE]\n\n"

    async def close(self) -> None:
        return None


async def handler(request: Request) -> Response | Streamed:
    if request.oversized:
        return Response(b'{"error":{"message":"too large","type":"t","code":null,"param":null}}', 413)
    if request.path == "/stream":
        return Streamed(Frames())
    return Response(orjson.dumps({"path": request.path, "body": request.body.decode("latin-1")}))


def _chunked(body: bytes) -> bytes:
    return b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 700]), body[i : i + 700]) for i in range(0, len(body), 700)
    )


methods = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PRI", b"CONNECT", b"G\x00T", b""])
targets = st.one_of(
    st.sampled_from(
        [b"/", b"/stream", b"/%6detrics", b"/a?b=c", b"http://h/x", b"*", b"h:443", b"/" + b"a" * 9000]
    ),
    st.binary(max_size=30),
)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 ", b"HTTP/9", b""])
headers = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"Host: x",
                b"Host: y",
                b"Connection: close",
                b"Connection: keep-alive",
                b"Connection: Upgrade",
                b"Upgrade: h2c",
                b"Upgrade: websocket",
                b"Transfer-Encoding: chunked",
                b"Expect: 100-continue",
                b"Content-Length: -1",
                b"Content-Length: 99999999",
                b"X-Big: " + b"v" * 70_000,
            ]
        ),
        st.integers(0, 6000).map(lambda n: b"Content-Length: %d" % n),
        st.tuples(st.binary(max_size=8), st.binary(max_size=20)).map(lambda t: t[0] + b":" + t[1]),
        st.binary(max_size=30),
    ),
    max_size=6,
)


@st.composite
def hostile_request(draw: st.DrawFn) -> bytes:
    head = draw(methods) + b" " + draw(targets) + b" " + draw(versions) + b"\r\n"
    lines = draw(headers)
    body = draw(st.binary(max_size=3000))
    if b"Transfer-Encoding: chunked" in lines and draw(st.booleans()):
        body = _chunked(body) + b"0\r\n\r\n"
    return head + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


@st.composite
def valid_request(draw: st.DrawFn) -> tuple[bytes, str]:
    path = draw(st.sampled_from(["/", "/v1/chat/completions", "/stream", "/a%2Fb"]))
    body = draw(st.binary(max_size=LIMIT).map(lambda b: b.replace(b"\r", b"")))
    if draw(st.booleans()):
        framed = b"Transfer-Encoding: chunked\r\n\r\n" + (_chunked(body) if body else b"") + b"0\r\n\r\n"
    else:
        framed = b"Content-Length: %d\r\n\r\n" % len(body) + body
    return b"POST %s HTTP/1.1\r\nHost: x\r\n" % path.encode() + framed, path


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a] or [data]


@FUZZ
@given(
    requests=st.lists(hostile_request(), min_size=1, max_size=3),
    tail=st.sampled_from([b"", b"\r\n", b"\r\n" * 40, b"\x16\x03\x01", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=8),
)
def test_whatever_arrives_the_answers_are_well_formed_and_the_connection_bounded(
    requests: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    data = b"".join(requests) + tail
    driven = asyncio.run(drive(split(data, cuts), handler))
    answers = read_answers(bytes(driven.transport.out), driven.transport.closed)
    assert answers.error is None and answers.complete, driven.transport.out[:200]
    assert len(answers.done) <= len(requests) + 1
    for answer in answers.done:
        if answer.status >= 400:
            assert answer.headers["content-type"] == "application/json" and is_openai_error(answer.body)
    if any(a.headers.get("connection") == "close" for a in answers.done):
        assert driven.transport.closed, "announced Connection: close, left open"
    # Held: one request's target, head and body at most (plus the read that crossed the limit).
    assert driven.peak_held <= LIMITS.max_url_bytes + LIMITS.max_head_bytes + LIMIT + 70_000 + 6000


@FUZZ
@given(
    requests=st.lists(valid_request(), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=12),
)
def test_valid_requests_however_split_are_all_answered_in_order(
    requests: list[tuple[bytes, str]], cuts: list[int]
) -> None:
    data = b"".join(raw for raw, _ in requests)
    driven = asyncio.run(drive(split(data, cuts), handler))
    answers = read_answers(bytes(driven.transport.out))
    assert answers.error is None and answers.complete
    assert [a.status for a in answers.done] == [200] * len(requests)
    for answer, (_, path) in zip(answers.done, requests, strict=True):
        if path == "/stream":
            assert answer.body == b"data: 1\n\ndata: [DONE]\n\n"
        else:
            assert orjson.loads(answer.body)["path"] == path
    assert not driven.transport.closed and "connection" not in answers.done[-1].headers


@FUZZ
@given(
    requests=st.lists(valid_request(), min_size=1, max_size=3),
    hostile=hostile_request(),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=6),
)
# Found by this test: an oversized request pipelined after two others made the first answer close the
# connection, so the second was never answered.
@example(
    requests=[(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "/")] * 2,
    hostile=b"GET / HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n",
    cuts=[],
)
def test_valid_requests_are_answered_whatever_follows_them(
    requests: list[tuple[bytes, str]], hostile: bytes, cuts: list[int]
) -> None:
    data = b"".join(raw for raw, _ in requests) + hostile
    driven = asyncio.run(drive(split(data, cuts), handler))
    answers = read_answers(bytes(driven.transport.out), driven.transport.closed)
    assert answers.error is None and answers.complete
    assert [a.status for a in answers.done[: len(requests)]] == [200] * len(requests)
