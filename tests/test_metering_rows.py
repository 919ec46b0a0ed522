"""The ledger rows the request path builds: every column holds the value it is named for.

``build_row`` and ``attempt_row`` construct their rows positionally (keyword construction of a 40-column
row costs several times more, on every request), so a column added, removed or moved in
``ledger/schema.py`` without the same change there would shift values into the wrong columns. These tests
give each input a distinct value and check each column by name against a row built with keywords.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from modelyard.catalog.price_types import ModelPrice, Rates
from modelyard.gateway.metering import (
    Outcome,
    RequestContext,
    RowFacts,
    attempt_row,
    build_row,
    request_values,
    tool_calls_in,
)
from modelyard.gateway.targets import Target, Workload
from modelyard.ledger import spool
from modelyard.ledger.schema import SCHEMA_VERSION, AttemptRow, RequestRow
from modelyard.providers.base import Usage

USAGE = Usage(
    input_tokens=1001,
    output_tokens=202,
    cached_input_tokens=303,
    cache_write_tokens=44,
    reasoning_tokens=55,
    estimated=True,
    search_units=66,
)


def _target(price: ModelPrice | None) -> Target:
    return Target(
        public_model="public-m",
        provider="prov-a",
        provider_kind="openai",
        hosting="external",
        upstream_model="up-model",
        kind="chat",
        adapter=None,  # type: ignore[arg-type]  # rows never touch the adapter
        price=price,
        price_version="prices@2026-11" if price else None,
    )


PRICE = ModelPrice(
    provider="openai",
    model="up-model",
    rates=Rates(
        input=Decimal("2.5"), output=Decimal("10"), cached_input=Decimal("1.25"), cache_write=Decimal("3")
    ),
    source="test",
    as_of=date(2026, 11, 1),
)


def _ctx() -> RequestContext:
    return RequestContext(
        request_id="req-1", ts=1700000000.5, t0=0.0, endpoint="chat", tenant="team-a", api_key_id="key-9"
    )


def _traced_ctx() -> RequestContext:
    ctx = _ctx()
    ctx.template_id, ctx.template_version, ctx.trace_id = (
        "triage-prompt",
        "v7",
        "0af7651916cd43dd8448eb211c80319c",
    )
    return ctx


@pytest.mark.parametrize("price", [PRICE, None], ids=["priced", "unpriced"])
def test_attempt_row_columns(price: ModelPrice | None) -> None:
    target = _target(price)
    row = attempt_row(
        _ctx(),
        3,
        target,
        status=502,
        error_kind="upstream_error",
        seconds=0.25,
        usage=USAGE,
        ttft_seconds=0.125,
        purpose="shadow",
        upstream_model="served-by",
    )
    expected = AttemptRow(
        request_id="req-1",
        attempt=3,
        ts=1700000000.5,
        provider="prov-a",
        provider_kind="openai",
        upstream_model="served-by",
        status=502,
        error_kind="upstream_error",
        latency_ms=250.0,
        ttft_ms=125.0,
        input_tokens=1001,
        output_tokens=202,
        cached_input_tokens=303,
        cache_write_tokens=44,
        reasoning_tokens=55,
        usage_estimated=True,
        cost_pico_usd=price.cost_pico(USAGE) if price else None,
        priced=price is not None,
        purpose="shadow",
        search_units=66,
    )
    _same(row, expected)


@pytest.mark.parametrize("price", [PRICE, None], ids=["priced", "unpriced"])
@pytest.mark.parametrize("usage", [USAGE, None], ids=["usage", "no-usage"])
@pytest.mark.parametrize("model", ["served-by", None], ids=["model", "no-model"])
def test_an_answered_attempt_has_the_row_attempt_row_builds(
    price: ModelPrice | None, usage: Usage | None, model: str | None
) -> None:
    """``Outcome.answered`` writes out ``attempt_row``'s work for the answered case: same row."""
    outcome = Outcome(status=200, upstream_seconds=0.5)
    outcome.answered(_ctx(), _target(price), usage, 0.25, model)
    outcome.answered(_ctx(), _target(price), usage, 0.125, model)
    for number, seconds, row in zip((1, 2), (0.25, 0.125), outcome.attempts, strict=True):
        expected = attempt_row(
            _ctx(), number, _target(price), status=200, error_kind=None, seconds=seconds, usage=usage,
            upstream_model=model,
        )  # fmt: skip
        _same(row, expected)
    assert outcome.upstream_seconds == 0.875


def test_attempt_row_without_usage_counts_nothing() -> None:
    row = attempt_row(_ctx(), 1, _target(PRICE), status=503, error_kind="upstream_unavailable", seconds=0.5)
    assert (row.input_tokens, row.output_tokens, row.usage_estimated) == (0, 0, False)
    assert (row.cost_pico_usd, row.priced, row.ttft_ms, row.upstream_model) == (None, False, None, "up-model")


def test_request_row_columns() -> None:
    target = _target(PRICE)
    ctx = _traced_ctx()
    first = attempt_row(ctx, 1, target, status=429, error_kind="rate_limited", seconds=0.1)
    second = attempt_row(ctx, 2, target, status=200, error_kind=None, seconds=0.2, usage=USAGE)
    outcome = Outcome(
        status=200,
        target=target,
        usage=USAGE,
        finish_reason="length",
        upstream_model="served-by",
        attempts=[first, second],
        upstream_seconds=0.3,
        backoff_seconds=0.05,
        ttft_seconds=0.0625,
        route="fallback:r; skip x (policy)",
        prompt="[prompt]",
        completion="[completion]",
        shadow_of="req-0",
        tool_calls=3,
    )
    workload = Workload("support", "internal", True, "public-m")
    facts = RowFacts(workload, "confidential", "confidential (header); allows any", "route-r", True)
    row = build_row(ctx, facts, outcome)
    assert row.latency_ms > 0
    expected = RequestRow(
        request_id="req-1",
        ts=1700000000.5,
        endpoint="chat",
        workload="support",
        data_class="confidential",
        tenant="team-a",
        api_key_id="key-9",
        model="route-r",
        provider="prov-a",
        provider_kind="openai",
        upstream_model="served-by",
        status=200,
        error_kind=None,
        streamed=True,
        input_tokens=1001,
        output_tokens=202,
        cached_input_tokens=303,
        cache_write_tokens=44,
        reasoning_tokens=55,
        usage_estimated=True,
        cost_pico_usd=PRICE.cost_pico(USAGE),
        priced=True,
        price_version="prices@2026-11",
        latency_ms=row.latency_ms,  # the clock's: checked above and below
        ttft_ms=62.5,
        upstream_latency_ms=300.0,
        overhead_ms=row.latency_ms - 350.0,
        attempts=2,
        retries=1,
        finish_reason="length",
        client_cancelled=False,
        route="fallback:r; skip x (policy)",
        prompt="[prompt]",
        completion="[completion]",
        policy="confidential (header); allows any",
        cache_hit=False,
        cost_saved_pico_usd=None,
        shadow_of="req-0",
        purpose="shadow",
        eval_run_id=None,
        template_id="triage-prompt",
        template_version="v7",
        tool_calls=3,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        search_units=66,
    )
    _same(row, expected, approx=("overhead_ms",))


def test_request_row_refused_before_any_attempt() -> None:
    workload = Workload(None, None, False, None)
    row = build_row(
        _ctx(), RowFacts(workload, None, None, "m", False), Outcome(status=401, error_kind="auth")
    )
    assert (row.provider, row.cost_pico_usd, row.priced, row.attempts, row.retries) == (None, 0, True, 0, 0)
    assert (row.upstream_latency_ms, row.overhead_ms, row.purpose, row.input_tokens) == (
        None,
        None,
        "answer",
        0,
    )
    assert (row.template_id, row.template_version, row.tool_calls, row.trace_id) == (None, None, None, None)


@pytest.mark.parametrize(
    ("attempts", "cost", "priced", "tried"),
    [
        ([], 0, True, 0),  # refused: nothing billed costs exactly $0
        ([("answer", PRICE, None)], 0, True, 1),  # failed before any token: nothing billed
        ([("answer", PRICE, USAGE), ("answer", PRICE, USAGE)], 2 * PRICE.cost_pico(USAGE), True, 2),
        ([("answer", None, None), ("answer", PRICE, USAGE)], PRICE.cost_pico(USAGE), True, 2),
        ([("answer", PRICE, USAGE), ("answer", None, USAGE)], None, False, 2),  # tokens without a price
        ([("shadow", None, USAGE), ("answer", PRICE, USAGE)], PRICE.cost_pico(USAGE), True, 1),
    ],
    ids=["refused", "unbilled", "two-billed", "unpriced-unbilled", "unpriced-billed", "shadow-left-out"],
)
def test_request_cost_sums_billed_answer_attempts(
    attempts: list[tuple[str, ModelPrice | None, Usage | None]], cost: int | None, priced: bool, tried: int
) -> None:
    ctx = _ctx()
    rows = [
        attempt_row(ctx, n, _target(price), status=200, error_kind=None, seconds=0.1, usage=usage, purpose=p)
        for n, (p, price, usage) in enumerate(attempts, start=1)
    ]
    outcome = Outcome(status=200, target=_target(PRICE) if rows else None, attempts=rows)
    row = build_row(ctx, RowFacts(Workload(None, None, False, None), None, None, "m", False), outcome)
    assert (row.cost_pico_usd, row.priced, row.attempts, row.retries) == (
        cost,
        priced,
        tried,
        max(tried - 1, 0),
    )
    assert row.price_version == ("prices@2026-11" if rows and priced else None)
    assert (row.upstream_latency_ms is None) is (tried == 0)


def test_the_recorders_spool_line_is_the_rows_line() -> None:
    """The recorder spools a request as its values (``request_values``, no row object): the same bytes as
    the line of the row built from them, read back (as the ingester does) as that row and its attempts."""
    target = _target(PRICE)
    ctx = _traced_ctx()
    attempts = [attempt_row(ctx, 1, target, status=200, error_kind=None, seconds=0.2, usage=USAGE)]
    outcome = Outcome(status=200, target=target, usage=USAGE, attempts=attempts, upstream_seconds=0.2)
    workload = Workload("support", "internal", True, "public-m")
    values = request_values(ctx, RowFacts(workload, "internal", "internal (workload)", "r", False), outcome)
    row = RequestRow(*values)
    line = spool.encode_request(values, attempts)
    assert line == spool.encode_line(row, attempts) and line.endswith(b"]]\n")
    version, request, read_attempts = spool.decode_line(line.rstrip(b"\n"))
    assert (version, request, read_attempts) == (SCHEMA_VERSION, row, attempts)
    _, request_values_read, attempt_values_read = spool.decode_values(line)
    assert request_values_read == values and len(attempt_values_read) == 1


def _same(row: Any, expected: Any, approx: tuple[str, ...] = ()) -> None:
    for column in fields(expected):
        got, want = getattr(row, column.name), getattr(expected, column.name)
        if column.name in approx:
            assert got == pytest.approx(want), column.name
        else:
            assert got == want and type(got) is type(want), f"{column.name}: {got!r} != {want!r}"


_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"choices": [{"message": {"content": "hi"}}]}, 0),
        ({"choices": [{"message": {"tool_calls": [_CALL, _CALL]}}, {"message": {"tool_calls": [_CALL]}}]}, 3),
        ({"choices": [{"message": {"tool_calls": None}}, "not a choice"]}, 0),
        ({}, 0),
    ],
)
def test_tool_calls_are_counted_over_every_choice(body: dict[str, Any], expected: int) -> None:
    assert tool_calls_in(body) == expected
