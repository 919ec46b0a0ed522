"""Admission is a pure function of (config, request, caller, observed state): tested from tables of cases,
answers and refusals alike — a refusal carries what admission had decided when it refused."""

from __future__ import annotations

import random
from typing import Any

import pytest
from multidict import CIMultiDict

from modelyard.catalog.prices import PriceCatalog
from modelyard.config.loader import parse_config
from modelyard.config.schema import Config, ModelKind
from modelyard.gateway.admission import Refused, RequestPlan, Tables, admit
from modelyard.gateway.auth import Caller
from modelyard.gateway.targets import Target, build_routes, build_targets
from modelyard.http.meta import read_meta

MESSAGES = [{"role": "user", "content": "hello"}]
PII = [{"role": "user", "content": "mail me at ana.lima@example.org"}]


def config(**overrides: Any) -> Config:
    raw: dict[str, Any] = {
        "providers": {
            "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "K"},
            "pool": {"kind": "openai_compatible", "profile": "vllm", "base_url": "http://127.0.0.1:9/v1"},
        },
        "models": {
            "mini": {"provider": "openai", "upstream_model": "gpt-4o-mini"},
            "llama": {"provider": "pool", "upstream_model": "llama"},
            "embed": {"provider": "openai", "upstream_model": "text-embedding-3-small", "kind": "embedding"},
        },
        "routes": {"both": {"strategy": "fallback", "targets": [{"model": "mini"}, {"model": "llama"}]}},
        "workloads": {
            "chat": {"data_class": "public"},
            "support": {"data_class": "internal", "model": "both", "cache": {"ttl_s": 60}},
            "secret": {"data_class": "restricted"},
        },
        "policy": {"data_classes": {"confidential": {"allow": ["any"], "pii": "mask"}}},
    }
    raw.update(overrides)
    return parse_config(raw)


CONFIG = config()
#: No adapter is ever called here: admission only plans.
NEVER_CALLED: Any = object()
TARGETS = build_targets(CONFIG, dict.fromkeys(CONFIG.providers, NEVER_CALLED), PriceCatalog("none"))
TABLES = Tables(CONFIG, build_routes(CONFIG, TARGETS), frozenset({"support"}))
KEY = Caller("k1", "acme", ("chat", "support"), None)
CONFIDENTIAL_KEY = Caller("k2", "acme", (), "confidential")


def plan(
    body: dict[str, Any],
    headers: dict[str, str] | CIMultiDict[str] | None = None,
    caller: Caller | None = None,
    kind: ModelKind = "chat",
    down: frozenset[str] = frozenset(),
    tables: Tables = TABLES,
    all_available: bool = False,
) -> RequestPlan:
    def available(target: Target) -> bool:
        assert not all_available, "asked about a target while every circuit is said to be closed"
        return target.public_model not in down

    meta = read_meta(CIMultiDict(headers or {}), body, kind)
    return admit(tables, meta, body, caller, available, random.Random(1), all_available)


ADMITTED = [
    # (case, body, headers, caller, workload, class (source), route, candidates)
    ("header names the workload", {"model": "mini"}, {"X-Modelyard-Workload": "chat"}, None,
     "chat", "public (workload)", "mini", ["mini"]),
    ("metadata names the workload", {"model": "mini", "metadata": {"workload": "chat"}}, None, None,
     "chat", "public (workload)", "mini", ["mini"]),
    ("the workload's default model", {}, {"X-Modelyard-Workload": "support"}, None,
     "support", "internal (workload)", "both", ["mini", "llama"]),
    ("a header tightens the class", {"model": "mini"}, {"X-Modelyard-Workload": "chat", "X-Modelyard-Data-Class": "internal"}, None,
     "chat", "internal (header)", "mini", ["mini"]),
    ("restricted leaves external targets out", {"model": "both"}, {"X-Modelyard-Workload": "support", "X-Modelyard-Data-Class": "restricted"}, None,
     "support", "restricted (header)", "both", ["llama"]),
    ("the key's class tightens the workload's", {"model": "mini"}, {"X-Modelyard-Workload": "chat"}, CONFIDENTIAL_KEY,
     "chat", "confidential (key)", "mini", ["mini"]),
    ("a key limited to workloads may use them", {"model": "mini"}, {"X-Modelyard-Workload": "chat"}, KEY,
     "chat", "public (workload)", "mini", ["mini"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "headers", "caller", "workload", "data_class", "route", "candidates"),
    ADMITTED,
    ids=[c[0] for c in ADMITTED],
)
def test_admission_decides_workload_class_and_route_once(
    case: str,
    body: dict[str, Any],
    headers: dict[str, str] | None,
    caller: Caller | None,
    workload: str,
    data_class: str,
    route: str,
    candidates: list[str],
) -> None:
    planned = plan({"messages": MESSAGES, **body}, headers, caller)
    assert planned.workload.name == workload
    assert f"{planned.decision.data_class} ({planned.decision.source})" == data_class
    assert (planned.route.name, [t.public_model for t in planned.attempts.candidates]) == (route, candidates)
    # The row's facts say the same, once.
    assert (planned.facts.workload, planned.facts.data_class, planned.facts.model) == (
        planned.workload,
        planned.decision.data_class,
        route,
    )
    assert planned.facts.policy is not None and planned.facts.policy.startswith(data_class)
    # With every circuit closed (the gateway's count says so), the same plan without asking the breakers.
    assert plan({"messages": MESSAGES, **body}, headers, caller, all_available=True) == planned


REFUSED = [
    # (case, body, headers, caller, down, code, status, row: (workload, class, model, route))
    ("no workload named", {"model": "mini"}, None, None, (),
     "workload_required", 400, (None, None, "mini", None)),
    ("unknown workload", {"model": "mini"}, {"X-Modelyard-Workload": "nope"}, None, (),
     "unknown_workload", 400, (None, None, "mini", None)),
    ("a workload the key may not use", {"model": "mini"}, {"X-Modelyard-Workload": "secret"}, KEY, (),
     "workload_not_allowed", 403, ("secret", "restricted", "mini", "single:mini; refused (workload_not_allowed)")),
    ("a header that loosens the class", {"model": "mini"}, {"X-Modelyard-Workload": "support", "X-Modelyard-Data-Class": "public"}, None, (),
     "data_class_loosened", 403, ("support", "internal", "mini", "single:mini; refused (data_class_loosened)")),
    ("an unknown data class", {"model": "mini"}, {"X-Modelyard-Workload": "chat", "X-Modelyard-Data-Class": "secret"}, None, (),
     "unknown_data_class", 400, ("chat", "public", "mini", "single:mini; refused (unknown_data_class)")),
    ("an unknown model", {"model": "gpt-9"}, {"X-Modelyard-Workload": "chat"}, None, (),
     "model_not_found", 404, ("chat", "public", "gpt-9", None)),
    ("an embedding model for chat", {"model": "embed"}, {"X-Modelyard-Workload": "chat"}, None, (),
     "wrong_model_kind", 400, ("chat", "public", "embed", "single:embed; refused (wrong_model_kind)")),
    ("no target the class allows", {"model": "mini"}, {"X-Modelyard-Workload": "secret"}, None, (),
     "policy_denied", 403, ("secret", "restricted", "mini", "single:mini; skip mini (policy)")),
    ("every circuit open", {"model": "both"}, {"X-Modelyard-Workload": "support"}, None, ("mini", "llama"),
     "no_healthy_target", 503, ("support", "internal", "both", "fallback:both; skip mini (circuit open); skip llama (circuit open)")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "headers", "caller", "down", "code", "status", "row"),
    REFUSED,
    ids=[c[0] for c in REFUSED],
)
def test_a_refusal_carries_what_admission_had_decided(
    case: str,
    body: dict[str, Any],
    headers: dict[str, str] | None,
    caller: Caller | None,
    down: tuple[str, ...],
    code: str,
    status: int,
    row: tuple[str | None, str | None, str, str | None],
) -> None:
    with pytest.raises(Refused) as refused:
        plan({"messages": MESSAGES, **body}, headers, caller, down=frozenset(down))
    error, facts = refused.value.error, refused.value.facts
    assert (error.code, error.status) == (code, status), error
    assert (facts.workload.name, facts.data_class, facts.model, refused.value.route) == row


def test_the_strictest_of_repeated_data_class_headers_counts() -> None:
    headers: CIMultiDict[str] = CIMultiDict({"X-Modelyard-Workload": "support"})
    headers.add("X-Modelyard-Data-Class", "restricted")
    headers.add("X-Modelyard-Data-Class", "confidential")
    planned = plan({"model": "both", "messages": MESSAGES}, headers)
    assert planned.decision.data_class == "restricted"
    assert [t.public_model for t in planned.attempts.candidates] == ["llama"]


def test_redaction_is_decided_with_the_class_and_noted_in_the_row() -> None:
    headers = {"X-Modelyard-Workload": "chat", "X-Modelyard-Data-Class": "confidential"}
    planned = plan({"model": "mini", "messages": PII}, headers)
    assert "ana.lima@example.org" not in str(planned.redaction.body["messages"])
    assert planned.facts.policy == "confidential (header); allows any target; pii mask: EMAIL 1"
    untouched = plan({"model": "mini", "messages": PII}, {"X-Modelyard-Workload": "chat"})
    assert untouched.redaction.body["messages"] == PII, "a public request is sent as it came"


@pytest.mark.parametrize(
    ("workload", "tenant", "cached"),
    [("support", None, True), ("chat", None, False)],
)
def test_a_cache_key_only_for_workloads_that_cache(workload: str, tenant: str | None, cached: bool) -> None:
    planned = plan({"model": "mini", "messages": MESSAGES}, {"X-Modelyard-Workload": workload})
    assert (planned.cache_key is not None) == cached


def test_the_cache_key_differs_by_tenant_and_class() -> None:
    body = {"model": "mini", "messages": MESSAGES}
    base = plan(body, {"X-Modelyard-Workload": "support"}).cache_key
    keyed = plan(body, {"X-Modelyard-Workload": "support"}, KEY).cache_key
    tighter = plan(
        body, {"X-Modelyard-Workload": "support", "X-Modelyard-Data-Class": "confidential"}
    ).cache_key
    assert len({base, keyed, tighter}) == 3


@pytest.mark.parametrize(
    ("body", "stream", "wants_usage"),
    [
        ({}, False, False),
        ({"stream": True}, True, False),
        ({"stream": True, "stream_options": {"include_usage": True}}, True, True),
        ({"stream": False, "stream_options": {"include_usage": True}}, False, False),
    ],
)
def test_the_plan_says_how_the_answer_goes(body: dict[str, Any], stream: bool, wants_usage: bool) -> None:
    planned = plan({"model": "mini", "messages": MESSAGES, **body}, {"X-Modelyard-Workload": "chat"})
    assert (planned.stream, planned.wants_usage, planned.facts.streamed) == (stream, wants_usage, stream)


def test_the_default_workload_applies_when_none_is_named() -> None:
    tables = Tables(config(server={"default_workload": "chat"}), TABLES.routes)
    assert plan({"model": "mini", "messages": MESSAGES}, tables=tables).workload.name == "chat"


def test_without_workloads_every_request_is_accepted_without_one() -> None:
    bare = config(workloads={})
    tables = Tables(bare, TABLES.routes)
    planned = plan({"model": "mini", "messages": MESSAGES}, tables=tables)
    assert (planned.workload.name, planned.decision.data_class, planned.decision.source) == (
        None,
        "internal",
        "default",
    )


@pytest.mark.parametrize(
    ("headers", "body", "workload", "named_in"),
    [
        ({"X-Modelyard-Workload": "chat"}, {}, "chat", "header X-Modelyard-Workload"),
        ({}, {"metadata": {"workload": "chat"}}, "chat", "metadata.workload"),
        ({"X-Modelyard-Workload": "chat"}, {"metadata": {"workload": "support"}}, "chat", "header X-Modelyard-Workload"),
        ({}, {"metadata": {"workload": 7}}, 7, "metadata.workload"),
        ({}, {}, None, ""),
    ],
)  # fmt: skip
def test_the_request_names_its_workload_in_a_header_or_its_metadata(
    headers: dict[str, str], body: dict[str, Any], workload: object, named_in: str
) -> None:
    meta = read_meta(CIMultiDict(headers), body, "chat")
    assert (meta.workload, meta.workload_from) == (workload, named_in)


def test_a_header_whose_first_line_is_empty_is_still_read_whole() -> None:
    """``read_meta`` skips its header helpers when a header is absent; an empty first line is not absent."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in [
        ("X-Modelyard-Workload", ""),
        ("X-Modelyard-Workload", "chat"),
        ("X-Modelyard-Template", ""),
        ("X-Modelyard-Template", "faq@2"),
        ("X-Modelyard-Data-Class", ""),
        ("X-Modelyard-Data-Class", "internal"),
    ]:
        headers.add(name, value)
    meta = read_meta(headers, {}, "chat")
    assert (meta.workload, meta.workload_from) == ("chat", "header X-Modelyard-Workload")
    assert (meta.template_id, meta.template_version) == ("faq", "2")
    assert meta.data_classes == ("internal",)
    bare = read_meta(CIMultiDict(), {}, "chat")
    assert (bare.workload, bare.template_id, bare.data_classes) == (None, None, ())


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"stream": True},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"stream": True, "stream_options": {"include_usage": "yes"}},
        {"stream": False, "stream_options": {"include_usage": True}},
        {"stream": "true", "stream_options": {"include_usage": True}},
        {"metadata": None, "stream": True},
    ],
)
@pytest.mark.parametrize("kind", ["chat", "embedding"])
def test_a_request_that_names_nothing_gets_the_same_metadata_as_the_general_reading(
    body: dict[str, Any], kind: ModelKind
) -> None:
    """Requests without modelyard headers or metadata share a memoised value: it must be the one the
    general reading gives (forced here by a ``traceparent``, the one field then set apart)."""
    plain = read_meta(CIMultiDict(), body, kind)
    general = read_meta(CIMultiDict({"traceparent": "00-x"}), body, kind)
    assert general.traceparent == "00-x"
    assert plain == general._replace(traceparent=None)
    assert read_meta(CIMultiDict(), dict(body), kind) is plain


def test_a_workload_that_is_not_a_name_is_refused_as_unknown() -> None:
    with pytest.raises(Refused) as refused:
        plan({"model": "mini", "messages": MESSAGES, "metadata": {"workload": 7}})
    assert refused.value.error.code == "unknown_workload"
    assert "7 (metadata.workload)" in str(refused.value.error)


# -- the memo of steps 1-4 (one entry per request shape) ---------------------------------------------


def fresh_tables() -> Tables:
    return Tables(CONFIG, build_routes(CONFIG, TARGETS), frozenset({"support"}))


def test_a_shape_decided_once_is_decided_alike_for_the_next_request() -> None:
    tables = fresh_tables()
    body = {"model": "both", "messages": MESSAGES}
    headers = {"X-Modelyard-Workload": "support", "X-Modelyard-Data-Class": "confidential"}
    first = plan(body, headers, tables=tables)
    again = plan({**body, "stream": True}, headers, tables=tables)
    assert len(tables.decided) == 1
    assert (again.workload, again.decision, again.route) == (first.workload, first.decision, first.route)
    # The row says how this request was answered, not how the first one of its shape was.
    assert (first.facts.streamed, again.facts.streamed) == (False, True)
    assert again.facts._replace(streamed=False) == first.facts


def test_a_key_without_the_workload_is_refused_after_another_key_decided_its_shape() -> None:
    tables = fresh_tables()
    body = {"model": "llama", "messages": MESSAGES}
    headers = {"X-Modelyard-Workload": "secret"}
    allowed = Caller("k3", "acme", ("secret",), None)
    plan(body, headers, caller=allowed, tables=tables)
    assert len(tables.decided) == 1
    with pytest.raises(Refused) as refused:
        plan({**body, "stream": True}, headers, caller=KEY, tables=tables)
    assert refused.value.error.code == "workload_not_allowed"
    assert refused.value.facts.workload.name == "secret"
    assert refused.value.facts.data_class == "restricted" and refused.value.facts.streamed is True
    assert refused.value.route == "single:llama; refused (workload_not_allowed)"


def test_refusals_are_never_memoised_and_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.gateway import admission

    tables = fresh_tables()
    with pytest.raises(Refused):
        plan({"model": "nope", "messages": MESSAGES}, {"X-Modelyard-Workload": "chat"}, tables=tables)
    with pytest.raises(Refused):  # a workload named by an object cannot be a memo key: refused, not a crash
        plan({"model": "mini", "metadata": {"workload": {"x": 1}}, "messages": MESSAGES}, tables=tables)
    assert tables.decided == {}
    monkeypatch.setattr(admission, "MAX_DECIDED", 3)
    # A client cycling header values makes a new shape each time: past the bound, decided but not kept.
    for repeat in range(1, 6):
        headers = {"X-Modelyard-Workload": "chat", "X-Modelyard-Data-Class": ", ".join(["public"] * repeat)}
        assert (
            plan({"model": "mini", "messages": MESSAGES}, headers, tables=tables).decision.data_class
            == "public"
        )
    assert len(tables.decided) == 3


def test_the_usual_plan_is_reused_only_while_every_candidate_is_available() -> None:
    tables = fresh_tables()
    headers = {"X-Modelyard-Workload": "support"}
    body = {"model": "both", "messages": MESSAGES}
    first = plan(body, headers, tables=tables)
    assert [t.public_model for t in first.attempts.candidates] == ["mini", "llama"]
    assert plan(body, headers, tables=tables).attempts is first.attempts
    # A circuit opens: planned anew, the target skipped and said so; the usual plan is left as it was.
    degraded = plan(body, headers, down=frozenset({"mini"}), tables=tables)
    assert [t.public_model for t in degraded.attempts.candidates] == ["llama"]
    assert degraded.attempts.skipped == [("mini", "circuit open")]
    assert first.attempts.skipped == [] and len(first.attempts.candidates) == 2
    assert plan(body, headers, tables=tables).attempts is first.attempts
