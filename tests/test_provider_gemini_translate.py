"""The Gemini translation as tables of cases: OpenAI requests → Gemini, and Gemini answers, stream
events, usage and error bodies → OpenAI."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from modelyard.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from modelyard.providers.base import Usage
from modelyard.providers.gemini_request import (
    PLACEHOLDER_SIGNATURE,
    to_gemini_embedding_request,
    to_gemini_request,
)
from modelyard.providers.gemini_response import (
    StreamTranslator,
    error_from_body,
    from_gemini_embeddings,
    from_gemini_response,
    map_finish_reason,
    usage_from_gemini,
)
from tests.fakes.gemini import stream_events

MODEL = "gemini-2.5-flash"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# -- request translation --------------------------------------------------------------------------------


def test_system_and_developer_messages_become_one_system_instruction() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            user("Hi"),
            {"role": "assistant", "content": "Salut"},
            user("Again"),
        ]
    }
    request = to_gemini_request(body)
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]}
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Salut"}]},
        {"role": "user", "parts": [{"text": "Again"}]},
    ]


def test_images_become_inline_data_or_file_data() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    parts = to_gemini_request({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/cat.jpg"}},
    ]


def test_non_base64_data_url_is_refused() -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]
    with pytest.raises(InvalidRequest):
        to_gemini_request({"messages": [{"role": "user", "content": content}]})


def tool_history() -> list[dict[str, Any]]:
    signature = {"google": {"thought_signature": "c2lnLTE="}}
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    return [
        user("Weather and time in Paris?"),
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "14:00"},
        {"role": "assistant", "content": "Done.", "tool_calls": [{**calls[0], "extra_content": signature}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "[1, 2]"},
    ]


def test_tool_calls_and_results_become_function_parts() -> None:
    contents = to_gemini_request({"messages": tool_history(), "tools": [WEATHER_TOOL]})["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    assert contents[1]["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": PLACEHOLDER_SIGNATURE,
        },
        {"functionCall": {"name": "get_time", "args": {}}},
    ]
    # Parallel results share one user turn; names come from the matching call ids; non-objects are wrapped.
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"output": "14:00"}}},
    ]
    assert contents[3]["parts"][1]["thoughtSignature"] == "c2lnLTE="  # Gemini's own signature goes back
    assert contents[4]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": [1, 2]}}}
    ]


def test_tool_result_for_an_unknown_call_is_refused() -> None:
    messages = [user("hi"), {"role": "tool", "tool_call_id": "call_9", "content": "x"}]
    with pytest.raises(InvalidRequest, match="call_9"):
        to_gemini_request({"messages": messages})


def test_tools_use_parameters_json_schema_unchanged() -> None:
    request = to_gemini_request({"messages": [user("hi")], "tools": [WEATHER_TOOL]})
    declaration = request["tools"][0]["functionDeclarations"][0]
    assert declaration == {
        "name": "get_weather",
        "description": "Weather for a city",
        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    request = to_gemini_request({"messages": [user("hi")], "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert request["toolConfig"] == {"functionCallingConfig": config}


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        (None, {}),
        ({"type": "text"}, {}),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "a",
                    "strict": True,
                    "schema": {"type": "object", "additionalProperties": False},
                },
            },
            {
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object", "additionalProperties": False},
            },
        ),
    ],
)
def test_response_format(response_format: Any, expected: dict[str, Any]) -> None:
    config = to_gemini_request({"messages": [user("hi")], "response_format": response_format})[
        "generationConfig"
    ]
    assert {k: v for k, v in config.items() if k.startswith("response")} == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, {"candidateCount": 1}),
        (
            {"temperature": 0.2, "top_p": 0.9, "seed": 7},
            {"candidateCount": 1, "temperature": 0.2, "topP": 0.9, "seed": 7},
        ),
        ({"max_tokens": 50}, {"candidateCount": 1, "maxOutputTokens": 50}),
        ({"max_tokens": 50, "max_completion_tokens": 80}, {"candidateCount": 1, "maxOutputTokens": 80}),
        ({"stop": "END"}, {"candidateCount": 1, "stopSequences": ["END"]}),
        ({"stop": ["a", "b"], "n": 1}, {"candidateCount": 1, "stopSequences": ["a", "b"]}),
    ],
)
def test_generation_config(extra: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_gemini_request({"messages": [user("hi")], **extra})["generationConfig"] == expected


def test_more_than_one_choice_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        to_gemini_request({"messages": [user("hi")], "n": 2})


# -- response translation, usage, finish reasons and errors ---------------------------------------------


@pytest.mark.parametrize(
    ("reason", "tools", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("IMAGE_SAFETY", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("OTHER", False, "stop"),
    ],
)
def test_finish_reasons(reason: str, tools: bool, expected: str) -> None:
    assert map_finish_reason(reason, tools) == expected


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"promptTokenCount": 11, "candidatesTokenCount": 4}, Usage(11, 4)),
        (
            {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 3},
            Usage(100, 3, 60),
        ),
        (
            {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 46},
            Usage(10, 50, reasoning_tokens=46),
        ),
        ({"promptTokenCount": 10, "toolUsePromptTokenCount": 5, "candidatesTokenCount": 2}, Usage(15, 2)),
        ({"promptTokenCount": 7}, Usage(7, 0)),
        (None, Usage()),
    ],
)
def test_usage_normalisation(meta: dict[str, int] | None, expected: Usage) -> None:
    assert usage_from_gemini(meta) == expected


def test_response_skips_thoughts_and_numbers_tool_calls() -> None:
    response = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {"text": "Checking."},
                        {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "c2ln"},
                        {"functionCall": {"name": "b", "args": {}, "id": "given-id"}},
                        {"functionCall": {"name": "c"}},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "resp-9",
    }
    body, usage, finish = from_gemini_response(response, model=MODEL, created=1, response_id="fallback")
    message = body["choices"][0]["message"]
    assert (body["id"], body["model"], finish) == ("resp-9", "gemini-2.5-flash-001", "tool_calls")
    assert message["content"] == "Checking."
    assert [c["id"] for c in message["tool_calls"]] == ["call_1", "given-id", "call_3"]
    assert [c["function"]["arguments"] for c in message["tool_calls"]] == ['{"x":1}', "{}", "{}"]
    assert message["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert body["usage"] == Usage(5, 5, reasoning_tokens=2).to_openai() and usage == Usage(
        5, 5, reasoning_tokens=2
    )


def test_blocked_prompt_is_a_content_filter_finish() -> None:
    response = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}
    body, usage, finish = from_gemini_response(response, model=MODEL, created=1, response_id="x")
    assert finish == "content_filter" and body["choices"][0]["message"]["content"] is None
    assert (body["model"], body["id"], usage.input_tokens) == (MODEL, "x", 4)


def google_error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


def test_bad_key_400_is_an_auth_failure() -> None:
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
    error = error_from_body(google_error(400, "INVALID_ARGUMENT", "API key not valid", info), 400, "gem")
    assert error is not None
    assert (error.code, error.status, error.upstream_status) == ("upstream_auth_failed", 502, 400)


def test_retry_info_becomes_retry_after() -> None:
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
    error = error_from_body(google_error(429, "RESOURCE_EXHAUSTED", "quota", retry), 429, "gem")
    assert isinstance(error, UpstreamRateLimited) and error.retry_after == 7.0


@pytest.mark.parametrize(("code", "status"), [(503, 503), (500, 502), (400, 400), (403, 502)])
def test_error_statuses(code: int, status: int) -> None:
    error = error_from_body(google_error(code, "X", "bad things"), code, "gem")
    assert error is not None and error.status == status
    assert error_from_body({"candidates": []}, 200, "gem") is None


# -- the stream translator ------------------------------------------------------------------------------


def translate(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], StreamTranslator]:
    translator = StreamTranslator(model=MODEL, created=1, response_id="fallback")
    chunks = [chunk for event in events for chunk in translator.feed(event)]
    return chunks, translator


def test_stream_translator_text_then_usage() -> None:
    chunks, translator = translate(stream_events(MODEL, "text"))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hello"}, {"content": ", world!"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and translator.finished
    assert translator.usage == Usage(11, 4) and translator.output_chars == len("Hello, world!")
    assert translator.finish() == {**chunks[0], "choices": [], "usage": Usage(11, 4).to_openai()}
    assert {c["id"] for c in chunks} == {"fake-resp-1"}


def test_stream_translator_tool_call_fragments() -> None:
    chunks, translator = translate(stream_events(MODEL, "tool_call"))
    tool_deltas = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert tool_deltas == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city":"Paris"}'}},
    ]
    assert translator.finish_reason == "tool_calls"


def test_stream_translator_without_finish_is_unfinished() -> None:
    _, translator = translate(stream_events(MODEL, "text")[:1])
    assert not translator.finished and translator.usage == Usage(11, 0)


def test_stream_translator_raises_in_stream_errors() -> None:
    translator = StreamTranslator(model=MODEL, created=1, response_id="x")
    with pytest.raises(UpstreamUnavailable) as caught:
        translator.feed(google_error(503, "UNAVAILABLE", "overloaded"))
    assert caught.value.status == 503


# -- embeddings translation -----------------------------------------------------------------------------


def test_embedding_request_for_string_and_list() -> None:
    single = to_gemini_embedding_request({"input": "hello"}, "text-embedding-004")
    assert single == {
        "requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello"}]}}]
    }
    batch = to_gemini_embedding_request({"input": ["a", "b"], "dimensions": 8}, "m")
    assert [r["outputDimensionality"] for r in batch["requests"]] == [8, 8]
    # Token ids are the client's choice to fix (a 400 naming why), and a failed attempt the ledger records.
    with pytest.raises(UpstreamError) as refused:
        to_gemini_embedding_request({"input": [[1, 2, 3]]}, "m")
    assert (refused.value.status, refused.value.code) == (400, "token_ids_unsupported")


def test_embedding_response_base64_and_estimated_usage() -> None:
    response = {"embeddings": [{"values": [0.5, -1.0]}]}
    body, usage = from_gemini_embeddings(response, {"encoding_format": "base64"}, ["hello world"], "m")
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)
    assert usage == Usage(input_tokens=3, estimated=True) and body["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 3,
    }
