"""How the OpenAI adapter relays a stream: runs of events passed on as read, metered from their bytes,
with the few events exact metering needs parsed in full. Events follow the Chat Completions streaming
reference (``chat.completion.chunk`` objects, a usage chunk with empty ``choices``, ``data: [DONE]``)."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest

from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError
from modelyard.providers.base import ChatCall, StreamMeter
from modelyard.providers.openai import OpenAIAdapter
from modelyard.providers.openai_events import only_chunks, text_bytes

MODEL = "gpt-4o-mini-2024-07-18"


def event(
    delta: dict[str, object] | None, *, finish: str | None = None, usage: dict[str, int] | None = None
) -> bytes:
    chunk: dict[str, object] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                                "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    if usage is not None:
        chunk["usage"] = usage
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
ROLE = event({"role": "assistant", "content": ""})
TOKENS = [event({"content": t}) for t in ("Hel", 'lo "x"', "!")]
FINISH = event({}, finish="stop")
USAGE_EVENT = event(None, usage=USAGE)
DONE = b"data: [DONE]\n\n"


@pytest.fixture
def adapter() -> OpenAIAdapter:
    return OpenAIAdapter("openai", ProviderConfig(kind="openai", base_url="http://127.0.0.1:9/v1"), None)


def test_text_events_pass_through_unchanged_and_are_metered(adapter: OpenAIAdapter) -> None:
    meter = StreamMeter()
    head, _ = adapter._relay_block(ROLE, meter, keep_usage=True)
    block = b"".join(TOKENS)
    out, done = adapter._relay_block(block, meter, keep_usage=True)
    assert head == ROLE and out is block and not done  # the very bytes read, not a copy
    assert meter.upstream_model == MODEL and meter.started
    assert meter.output_chars == 0, "text is counted only when an estimate needs it"
    assert meter.text_chars() == len("Hel") + len('lo \\"x\\"') + len("!")  # escapes count double


def test_the_first_token_is_seen_whatever_run_it_comes_in(adapter: OpenAIAdapter) -> None:
    meter = StreamMeter()
    adapter._relay_block(ROLE, meter, keep_usage=True)
    assert not meter.started, "the role chunk's empty content is not a token"
    call = event({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ""}}]})
    adapter._relay_block(call, meter, keep_usage=True)
    assert not meter.started, "a tool call's name without arguments is not a token yet"
    adapter._relay_block(event({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}), meter, True)
    assert meter.started and meter.text_chars() == 1


def test_held_text_is_counted_once_it_grows_large(adapter: OpenAIAdapter) -> None:
    meter = StreamMeter()
    token = event({"content": "x" * 1000})
    for _ in range(100):
        adapter._relay_block(token, meter, keep_usage=True)
    assert len(meter.uncounted) < 70 and meter.output_chars > 0, "memory held per stream is bounded"
    assert meter.text_chars() == 100 * 1000 and not meter.uncounted


def test_a_done_inside_a_run_is_handled_event_by_event(adapter: OpenAIAdapter) -> None:
    meter = StreamMeter()
    out, done = adapter._relay_block(ROLE + DONE + TOKENS[0], meter, keep_usage=True)
    assert done and out == ROLE + TOKENS[0]


def test_the_end_is_metered_exactly_and_done_is_left_to_the_gateway(adapter: OpenAIAdapter) -> None:
    meter = StreamMeter()
    out, done = adapter._relay_block(ROLE + b"".join(TOKENS) + FINISH + USAGE_EVENT + DONE, meter, True)
    assert done and out == ROLE + b"".join(TOKENS) + FINISH + USAGE_EVENT
    assert meter.finish_reason == "stop"
    assert meter.usage is not None and (meter.usage.input_tokens, meter.usage.output_tokens) == (9, 3)


def test_the_usage_event_the_client_did_not_ask_for_is_dropped(adapter: OpenAIAdapter) -> None:
    meter = StreamMeter()
    out, done = adapter._relay_block(ROLE + FINISH + USAGE_EVENT + DONE, meter, keep_usage=False)
    assert done and out == ROLE + FINISH
    assert meter.usage is not None and meter.usage.output_tokens == 3  # metered all the same


def test_comments_and_other_fields_are_normalised_to_data_lines(adapter: OpenAIAdapter) -> None:
    meter = StreamMeter()
    adapter._relay_block(ROLE, meter, True)
    token = TOKENS[0][len(b"data: ") : -2]
    block = b": keep-alive\n\nevent: message\nid: 7\ndata: " + token + b"\n\n"
    out, done = adapter._relay_block(block, meter, True)
    assert out == b"data: " + token + b"\n\n" and not done
    assert meter.text_chars() == len("Hel")


def test_an_error_event_fails_the_stream(adapter: OpenAIAdapter) -> None:
    meter = StreamMeter()
    adapter._relay_block(ROLE, meter, True)
    error = b'data: {"error":{"message":"overloaded","type":"server_error","code":503}}\n\n'
    with pytest.raises(UpstreamError, match="overloaded"):
        adapter._relay_block(TOKENS[0] + error, meter, True)


def test_text_bytes_counts_content_and_tool_arguments() -> None:
    call = event({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]})
    assert text_bytes(TOKENS[0] + call) == len("Hel") + len('{\\"city\\":')


def test_spaced_json_from_python_servers_is_metered_too(adapter: OpenAIAdapter) -> None:
    """Servers built on ``json.dumps`` defaults put a space after every colon and comma."""

    def spaced(raw: bytes) -> bytes:
        data = orjson.loads(raw[len(b"data: ") : -2])
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    meter = StreamMeter()
    block = b"".join(spaced(e) for e in (ROLE, *TOKENS, FINISH, USAGE_EVENT)) + DONE
    out, done = adapter._relay_block(block, meter, keep_usage=False)
    assert done and meter.finish_reason == "stop" and meter.usage is not None
    assert meter.usage.output_tokens == 3 and b'"usage": {' not in out
    assert meter.text_chars() == len("Hel") + len('lo \\"x\\"') + len("!")


def _call_fragment(index: int, *, call_id: str | None, arguments: str) -> bytes:
    call: dict[str, object] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
    return event({"tool_calls": [call]})


def test_tool_calls_are_counted_by_index_in_plain_and_general_runs(adapter: OpenAIAdapter) -> None:
    """Two parallel calls, fragments spread over runs; one server repeats the id on every fragment. The
    count is the calls begun (the ledger's tool_calls), whatever the framing (issue 18)."""
    meter = StreamMeter()
    adapter._relay_block(ROLE, meter, True)
    adapter._relay_block(_call_fragment(0, call_id="call_a", arguments='{"ci'), meter, True)
    assert meter.tool_calls == 1
    repeated = _call_fragment(0, call_id="call_a", arguments='ty": "Paris"}')
    second = _call_fragment(1, call_id="call_b", arguments="{}")
    adapter._relay_block(repeated + second, meter, True)
    assert meter.tool_calls == 2, "a repeated id is the same call; index 1 is a new one"
    # The general (event by event) path: an ``id:`` field makes the run not plain.
    third = b"id: 9\n" + _call_fragment(2, call_id="call_c", arguments="{}")
    adapter._relay_block(third, meter, True)
    assert meter.tool_calls == 3
    plain_text = StreamMeter()
    adapter._relay_block(ROLE + b"".join(TOKENS) + FINISH, plain_text, True)
    assert plain_text.tool_calls == 0


def test_only_runs_of_chunk_events_skip_the_general_test() -> None:
    """The one-pass shortcut vouches for plain ``data:`` chunk events alone; anything else (an error
    object, a comment, other fields, multi-line data, [DONE] before the end) takes the general test."""
    assert only_chunks(ROLE + b"".join(TOKENS) + FINISH + USAGE_EVENT)
    error = b'data: {"error":{"message":"overloaded","code":503}}\n\n'
    assert not only_chunks(ROLE + error) and not only_chunks(error + ROLE)
    assert not only_chunks(ROLE + b": keep-alive\n\n" + TOKENS[0])
    assert not only_chunks(ROLE[:-1] + b"id: 7\n\n")
    assert not only_chunks(b"event: message\n" + ROLE)
    assert not only_chunks(ROLE + DONE + TOKENS[0])
    assert not only_chunks(b'data: {"id":"c1",\ndata: "choices":[]}\n\n')
    assert not only_chunks(b'data: {"choices":[],"id":"c1"}\n\n'), "another key first: the general test"


async def test_a_stream_read_to_its_end_gives_its_connection_back_without_a_close() -> None:
    """The relay no longer closes an upstream that ended (nor does the gateway's Relay): the exchange must
    have released the connection itself, so two streams in a row share one keep-alive connection."""
    body = ROLE + b"".join(TOKENS) + FINISH + USAGE_EVENT + DONE
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
                writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the adapter closed its pool
        finally:
            writer.close()  # else the accepted socket is left to the garbage collector (ResourceWarning)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = ProviderConfig(kind="openai", base_url=f"http://127.0.0.1:{port}/v1")
    adapter = OpenAIAdapter("openai", config, None)
    try:
        for _ in range(2):
            meter = StreamMeter()
            relay = adapter.stream(ChatCall({"model": "m", "messages": []}, "m"), meter)
            relayed = b"".join([block async for block in relay])  # type: ignore[misc]
            assert relayed == ROLE + b"".join(TOKENS) + FINISH
            assert meter.finish_reason == "stop" and meter.usage is not None
        (pool,) = adapter._client._pools.values()
        assert len(pool._idle) == 1 and not pool._slots.locked()
        assert connections == 1, "the first stream's connection was reused"
    finally:
        await adapter.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # the handler sees the close and closes its writer
