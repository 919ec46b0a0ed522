"""The reservation estimate and the lines a request draws on: pure functions, tables of cases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from modelyard.catalog.prices import load_catalog, to_pico
from modelyard.errors import InvalidRequest
from modelyard.governance.budgets import lines_for, usd_budgets_apply
from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import (
    Estimate,
    estimate,
    input_tokens,
    output_tokens,
    unpriced_actual_cost,
)
from modelyard.governance.model import Subject, UnpricedModel

CATALOG = load_catalog()
MINI = CATALOG.price_for("openai", "gpt-4o-mini")


@pytest.mark.parametrize(
    ("texts", "mode", "expected"),
    [
        ([], "bound", 3),
        (["hello"], "bound", 5 + 4 + 3),
        (["héllo"], "bound", 6 + 4 + 3),  # é is two UTF-8 bytes: a bound counts bytes, not characters
        (["system", "hello world"], "bound", 6 + 11 + 8 + 3),
        (["hello world!"], "approx", 3 + 4 + 3),  # 12 bytes / 4
        (["hello world!!"], "approx", 4 + 4 + 3),  # rounded up
    ],
)
def test_input_tokens_are_bounded_by_bytes_or_approximated(
    texts: list[str], mode: str, expected: int
) -> None:
    assert input_tokens(texts, mode=mode) == expected


@pytest.mark.parametrize(
    ("max_tokens", "cap", "expected"),
    [(None, None, 4096), (100, None, 100), (None, 300, 300), (100, 300, 100), (900, 300, 300)],
)
def test_output_is_the_smaller_of_max_tokens_and_the_workload_cap(
    max_tokens: int | None, cap: int | None, expected: int
) -> None:
    assert output_tokens(max_tokens, cap, 4096) == expected


def config(**fields: Any) -> GovernanceConfig:
    return GovernanceConfig.model_validate(fields)


def test_a_priced_model_is_reserved_at_its_catalog_price() -> None:
    assert MINI is not None
    got = estimate(
        config(),
        MINI,
        model="gpt-4o-mini",
        workload=None,
        prompt_tokens=1000,
        max_tokens=500,
        usd_budgets_apply=True,
    )
    expected = (1000 * MINI.rates.input + 500 * MINI.rates.output) / Decimal(1_000_000)
    assert got == Estimate(to_pico(expected), 1000, 500)


@pytest.mark.parametrize(
    ("rule", "usd_apply", "expected_cost"),
    [("fixed", True, to_pico(Decimal("0.05"))), ("skip_usd", True, None), ("refuse", False, None)],
)
def test_an_unpriced_model_follows_the_stated_rule(
    rule: str, usd_apply: bool, expected_cost: int | None
) -> None:
    got = estimate(
        config(unpriced=rule),
        None,
        model="mystery",
        workload=None,
        prompt_tokens=10,
        max_tokens=5,
        usd_budgets_apply=usd_apply,
    )
    assert got == Estimate(expected_cost, 10, 5)
    assert unpriced_actual_cost(got) == (expected_cost or 0)  # what settlement charges for it


def test_an_unpriced_model_under_a_hard_usd_budget_is_refused_by_default_with_the_fix() -> None:
    with pytest.raises(UnpricedModel, match=r"add it to a price file .* governance.unpriced"):
        estimate(
            config(),
            None,
            model="mystery",
            workload=None,
            prompt_tokens=10,
            max_tokens=5,
            usd_budgets_apply=True,
        )


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "code"),
    [(2001, None, "prompt_too_large"), (10, 301, "max_tokens_above_cap")],
)
def test_workload_hard_caps_refuse_before_anything_is_reserved(
    prompt: int, max_tokens: int | None, code: str
) -> None:
    cfg = config(workloads={"chat": {"max_output_tokens": 300, "max_input_tokens": 2000}})
    with pytest.raises(InvalidRequest) as err:
        estimate(
            cfg,
            MINI,
            model="m",
            workload="chat",
            prompt_tokens=prompt,
            max_tokens=max_tokens,
            usd_budgets_apply=True,
        )
    assert err.value.code == code


BUDGETS = config(
    budgets=[
        {
            "name": "acme-usd",
            "scope": "tenant",
            "subject": "acme",
            "unit": "usd",
            "limit": "10",
            "window": {"kind": "day"},
        },
        {
            "name": "per-key-tokens",
            "scope": "key",
            "unit": "tokens",
            "limit": 1000,
            "window": {"kind": "month"},
        },
        {
            "name": "chat-rpm",
            "scope": "workload",
            "subject": "chat",
            "unit": "requests",
            "limit": 60,
            "window": {"kind": "period", "seconds": 60},
            "mode": "soft",
        },
    ]
)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (
            Subject("acme", "k1", "chat"),
            [("acme-usd", "acme", 700), ("chat-rpm", "chat", 1), ("per-key-tokens", "k1", 30)],
        ),
        (Subject("other", "k2", None), [("per-key-tokens", "k2", 30)]),
        (Subject(None, None, None), []),
    ],
)
def test_which_budgets_a_request_draws_on(subject: Subject, expected: list[tuple[str, str, int]]) -> None:
    lines = lines_for(BUDGETS, subject, Estimate(700, 10, 20), now=1_800_000_000.0)
    assert [(x.budget, x.subject, x.amount) for x in lines] == expected
    assert [x.counter for x in lines] == sorted(x.counter for x in lines)
    assert all(x.hard == (x.budget != "chat-rpm") for x in lines)


def test_skip_usd_draws_on_no_usd_budget_and_counters_differ_per_window() -> None:
    lines = lines_for(BUDGETS, Subject("acme", "k1"), Estimate(None, 10, 20), now=1_800_000_000.0)
    assert [x.budget for x in lines] == ["per-key-tokens"]
    next_month = lines_for(
        BUDGETS, Subject("acme", "k1"), Estimate(None, 10, 20), now=1_800_000_000.0 + 40 * 86400
    )
    assert next_month[0].counter != lines[0].counter
    assert usd_budgets_apply(BUDGETS, Subject("acme")) and not usd_budgets_apply(BUDGETS, Subject("other"))
