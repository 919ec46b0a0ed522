"""The plain chat body accepted from its bytes (``http/plain_chat.py``) is only ever a body the full check
accepts: generated bodies, valid and not, one field at a time and mixed; the field lists held to the full
shape's; and what is not plain still gets the full check's error, naming the parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import InvalidRequest
from modelyard.http import validation
from modelyard.http.plain_chat import FIELDS, is_plain_chat
from modelyard.http.validation import check_chat_request

BENCH_BODY = Path(__file__).resolve().parents[1] / "bench" / "requests" / "chat.json"

#: Values of every JSON type, in and out of each field's range.
SCALARS: list[Any] = [None, True, False, 0, 1, 2, -1, 0.0, 0.5, 1.5, 2.5, 3, 10**6, "", "x", "auto", "none"]
VALUES: list[Any] = [*SCALARS, [], ["a"], [1], ["a", None], {}, {"include_usage": True}, {"include_usage": 1}]
ROLES: list[Any] = ["system", "developer", "user", "assistant", "tool", "function", "robot", "", None, 1]
CONTENTS: list[Any] = [
    "hello",
    "",
    None,
    1,
    [{"type": "text", "text": "hi"}],
    [{"type": "text"}],
    [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
    [],
    {"text": "hi"},
]
TOOL_CALLS: list[Any] = [
    None,
    [],
    [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
    [{"id": 1}],
    "x",
]


def _full_check_accepts(body: Any) -> bool:
    try:
        check_chat_request(body)  # no bytes: pydantic decides
    except InvalidRequest:
        return False
    return True


message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(ROLES),
        "content": st.sampled_from(CONTENTS),
        "name": st.sampled_from(SCALARS),
        "tool_calls": st.sampled_from(TOOL_CALLS),
        "tool_call_id": st.sampled_from(SCALARS),
        "extra": st.sampled_from(VALUES),
    },
)
chat_fields = {
    name: st.sampled_from(VALUES) for name in FIELDS["chat"] if name not in ("messages", "metadata")
}
chat_fields["metadata"] = st.sampled_from([None, {}, {"workload": "w"}, {"a": [1, {"b": None}]}, [], "x"])
chat_fields["messages"] = st.one_of(st.lists(message, max_size=3), st.sampled_from(VALUES))
chat_fields["unknown_parameter"] = st.sampled_from(VALUES)
body = st.fixed_dictionaries({}, optional=chat_fields)


@settings(max_examples=3000, deadline=None)
@given(body)
def test_a_body_accepted_as_plain_is_accepted_by_the_full_check(body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    if is_plain_chat(raw):
        assert _full_check_accepts(body), body


PLAIN: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
}


@pytest.mark.parametrize("field", sorted(chat_fields))
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_plain_body_with_one_field_changed_is_plain_only_if_the_full_check_accepts_it(
    field: str, value: Any
) -> None:
    """Mostly-valid bodies: the one changed field is what each check has to judge."""
    body = {**PLAIN, field: value}
    if is_plain_chat(orjson.dumps(body)):
        assert _full_check_accepts(body), body


@pytest.mark.parametrize("field", ["role", "content", "name", "tool_calls", "tool_call_id", "extra"])
@pytest.mark.parametrize("value", [*VALUES, *CONTENTS, *TOOL_CALLS, *ROLES], ids=repr)
def test_a_plain_message_with_one_field_changed_is_plain_only_if_the_full_check_accepts_it(
    field: str, value: Any
) -> None:
    body = {**PLAIN, "messages": [PLAIN["messages"][0], {**PLAIN["messages"][1], field: value}]}
    if is_plain_chat(orjson.dumps(body)):
        assert _full_check_accepts(body), body


@settings(max_examples=500, deadline=None)
@given(st.lists(message.filter(lambda m: m.get("role") in ROLES[:6]), min_size=1, max_size=3))
def test_plain_messages_with_text_are_recognised(messages: list[dict[str, Any]]) -> None:
    """The fast path must fire on the bodies it is for, or it is dead weight."""
    plain = all(
        isinstance(m.get("content", ""), str | None)
        and "tool_calls" not in m
        and isinstance(m.get("name", ""), str)
        and isinstance(m.get("tool_call_id", ""), str)
        for m in messages
    )
    assert is_plain_chat(orjson.dumps({"model": "m", "messages": messages})) is plain


def test_the_plain_shape_names_every_field_the_full_shape_checks() -> None:
    """A field the plain shape did not name would be ignored there, and pass unchecked."""
    assert set(FIELDS["chat"]) == set(validation.ChatRequest.__annotations__)
    assert set(FIELDS["message"]) == set(validation._Message.__annotations__)


def test_the_benchmark_body_is_plain() -> None:
    assert is_plain_chat(BENCH_BODY.read_bytes())


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"messages": []}, "messages"),
        (
            {"messages": [{"role": "user"}], "tools": [{"type": "function", "function": {}}]},
            "tools[0].function.name",
        ),
    ],
)
def test_a_body_that_is_not_plain_gets_the_full_checks_error(body: dict[str, Any], param: str) -> None:
    raw = orjson.dumps(body)
    assert not is_plain_chat(raw)
    with pytest.raises(InvalidRequest) as from_bytes:
        check_chat_request(body, raw)
    with pytest.raises(InvalidRequest) as from_body:
        check_chat_request(body)
    assert from_bytes.value.param == from_body.value.param == param
    assert str(from_bytes.value) == str(from_body.value)
