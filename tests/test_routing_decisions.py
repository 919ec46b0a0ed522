"""Routing decisions are pure functions: tested from tables of cases."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from modelyard.config.routing import BreakerConfig, DataClassPolicy, ValidatorConfig
from modelyard.errors import InvalidRequest, PolicyDenied
from modelyard.policy.data_classes import allows, effective_data_class
from modelyard.routing.breaker import CircuitBreaker
from modelyard.routing.cache import cache_key
from modelyard.routing.plan import Route, plan_route
from modelyard.routing.validators import first_failure, judge_verdict, schema_violation


@dataclass(frozen=True)
class T:
    public_model: str
    provider: str
    hosting: str


LLAMA = T("llama", "gpu-pool", "self_hosted")
MINI = T("gpt-mini", "openai", "external")
HAIKU = T("haiku", "anthropic", "external")


@pytest.mark.parametrize(
    ("workload", "header", "expected", "source"),
    [
        ("internal", None, "internal", "workload"),
        ("internal", "restricted", "restricted", "header"),
        ("public", "confidential", "confidential", "header"),
        ("confidential", "confidential", "confidential", "workload"),
        (None, None, "internal", "default"),
        (None, "restricted", "restricted", "header"),
    ],
)
def test_header_may_tighten_the_data_class(
    workload: str | None, header: str | None, expected: str, source: str
) -> None:
    decision = effective_data_class(workload, header)
    assert (decision.data_class, decision.source) == (expected, source)


@pytest.mark.parametrize(("workload", "header"), [("restricted", "public"), ("confidential", "internal")])
def test_header_may_never_loosen_the_data_class(workload: str, header: str) -> None:
    with pytest.raises(PolicyDenied, match="may only tighten"):
        effective_data_class(workload, header)


def test_unknown_data_class_header_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="allowed: public, internal, confidential, restricted"):
        effective_data_class("public", "secret")


@pytest.mark.parametrize(
    ("allow", "target", "allowed"),
    [
        (("any",), MINI, True),
        (("self_hosted",), LLAMA, True),
        (("self_hosted",), MINI, False),
        (("external",), MINI, True),
        (("external",), LLAMA, False),
        (("self_hosted", "anthropic"), HAIKU, True),
        (("self_hosted", "anthropic"), MINI, False),
    ],
)
def test_policy_allows(allow: tuple[str, ...], target: T, allowed: bool) -> None:
    assert allows(DataClassPolicy(allow=allow), target.provider, target.hosting) is allowed


def route(
    strategy: str, *targets: T, weights: tuple[float, ...] | None = None, shadow: T | None = None
) -> Route[T]:
    return Route(
        "r",
        strategy,
        tuple(targets),
        weights or tuple(1.0 for _ in targets),
        shadow=shadow,  # type: ignore[arg-type]
        shadow_sample=1.0 if shadow else 0.0,
    )


ANY = DataClassPolicy()
SELF_ONLY = DataClassPolicy(allow=("self_hosted",))


@pytest.mark.parametrize(
    ("the_route", "policy", "down", "candidates", "skipped"),
    [
        (route("fallback", MINI, HAIKU, LLAMA), ANY, set(), ["gpt-mini", "haiku", "llama"], []),
        (route("fallback", MINI, HAIKU, LLAMA), SELF_ONLY, set(), ["llama"], ["gpt-mini", "haiku"]),
        (route("fallback", MINI, HAIKU), SELF_ONLY, set(), [], ["gpt-mini", "haiku"]),
        (route("fallback", MINI, HAIKU, LLAMA), ANY, {"gpt-mini"}, ["haiku", "llama"], ["gpt-mini"]),
        (route("cascade", LLAMA, MINI), ANY, set(), ["llama", "gpt-mini"], []),
        (route("single", MINI), ANY, {"gpt-mini"}, [], ["gpt-mini"]),
    ],
)
def test_plan_orders_and_filters(
    the_route: Route[T], policy: DataClassPolicy, down: set[str], candidates: list[str], skipped: list[str]
) -> None:
    plan = plan_route(the_route, policy, lambda t: t.public_model not in down, random.Random(1))
    assert [t.public_model for t in plan.candidates] == candidates
    assert [name for name, _ in plan.skipped] == skipped


def test_loadbalance_follows_weights_and_keeps_the_rest_as_fallbacks() -> None:
    lb = route("loadbalance", MINI, HAIKU, LLAMA, weights=(6.0, 3.0, 1.0))
    rng = random.Random(42)
    firsts = [plan_route(lb, ANY, lambda t: True, rng).candidates[0].public_model for _ in range(5000)]
    shares = {name: firsts.count(name) / len(firsts) for name in ("gpt-mini", "haiku", "llama")}
    assert shares["gpt-mini"] == pytest.approx(0.6, abs=0.03)
    assert shares["haiku"] == pytest.approx(0.3, abs=0.03)
    assert shares["llama"] == pytest.approx(0.1, abs=0.02)
    plan = plan_route(lb, ANY, lambda t: True, random.Random(3))
    assert sorted(t.public_model for t in plan.candidates) == ["gpt-mini", "haiku", "llama"]


def test_restricted_data_is_never_mirrored_to_an_external_shadow() -> None:
    shadowed = route("shadow", LLAMA, shadow=MINI)
    plan = plan_route(shadowed, SELF_ONLY, lambda t: True, random.Random(0))
    assert plan.shadow is None and ("gpt-mini", "policy (shadow)") in plan.skipped
    plan = plan_route(shadowed, ANY, lambda t: True, random.Random(0))
    assert plan.shadow is MINI


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_failures_in_window_and_probes_half_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(failures=3, window_s=10, cooldown_s=5), clock)
    for t in (0.0, 1.0):
        clock.now = t
        breaker.failed()
    assert breaker.available()
    clock.now = 12.0  # the first two fell out of the window
    breaker.failed()
    assert breaker.state == "closed"
    for t in (12.5, 13.0):
        clock.now = t
        breaker.failed()
    assert breaker.state == "open" and not breaker.available()
    clock.now = 17.9
    assert not breaker.available()
    clock.now = 18.0  # opened at 13.0, cool-down 5 s
    assert breaker.available() and breaker.state == "half_open"
    breaker.started()
    assert not breaker.available(), "one probe at a time"
    breaker.failed()
    assert breaker.state == "open"
    clock.now = 23.0  # re-opened at 18.0
    assert breaker.available()
    breaker.started()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.available()
    assert [s for _, s in breaker.transitions] == ["open", "half_open", "open", "half_open", "closed"]


@pytest.mark.parametrize(
    ("validator", "text", "fails"),
    [
        (ValidatorConfig(kind="non_empty"), "ok", False),
        (ValidatorConfig(kind="non_empty"), "  ", True),
        (ValidatorConfig(kind="non_empty"), None, True),
        (ValidatorConfig(kind="max_length", max_chars=5), "12345", False),
        (ValidatorConfig(kind="max_length", max_chars=5), "123456", True),
        (ValidatorConfig(kind="regex", pattern=r"^\d{4}-\d{2}$"), "2026-11", False),
        (ValidatorConfig(kind="regex", pattern=r"^\d{4}-\d{2}$"), "Nov 2026", True),
        (
            ValidatorConfig(kind="json_schema", schema={"type": "object", "required": ["a"]}),
            '{"a": 1}',
            False,
        ),
        (ValidatorConfig(kind="json_schema", schema={"type": "object", "required": ["a"]}), '{"b": 1}', True),
        (ValidatorConfig(kind="json_schema", schema={"type": "object"}), "not json", True),
    ],
)
def test_validators(validator: ValidatorConfig, text: str | None, fails: bool) -> None:
    assert (first_failure(text, [validator]) is not None) is fails


def test_schema_violation_names_the_place() -> None:
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}}}
    assert (
        schema_violation('{"items": [1, "two"]}', schema)
        == "schema violation at items/1: 'two' is not of type 'integer'"
    )


@pytest.mark.parametrize(
    ("text", "verdict"),
    [("PASS", True), ("pass. good", True), ("FAIL: no", False), ("", False), ("Maybe", False)],
)
def test_judge_verdict(text: str, verdict: bool) -> None:
    assert judge_verdict(text) is verdict


def test_cache_key_separates_tenants_classes_and_parameters_but_not_streaming() -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    key = cache_key("r", body, workload="w", data_class="internal", tenant="a")
    assert key == cache_key(
        "r", {**body, "stream": True, "user": "u"}, workload="w", data_class="internal", tenant="a"
    )
    assert key != cache_key("r", body, workload="w", data_class="internal", tenant="b")
    assert key != cache_key("r", body, workload="w", data_class="restricted", tenant="a")
    assert key != cache_key("r", {**body, "temperature": 1}, workload="w", data_class="internal", tenant="a")
    assert key != cache_key("r2", body, workload="w", data_class="internal", tenant="a")
