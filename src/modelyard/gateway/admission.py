"""Admission: everything decided about a request before anything goes upstream, as one pure function.

:func:`admit` takes what the HTTP layer parsed (:class:`RequestMeta` and the body), who is calling, and
the observed state it may depend on (which targets' circuits let a request through, a random draw), and
returns an immutable :class:`RequestPlan`. It runs in steps, each deciding one thing once:

1. the workload (named by the request, or the configured default);
2. whether the caller's key may use it;
3. the data class: the workload's, tightened by the key's, tightened by what the request asks;
4. the route the requested model name (or the workload's default) stands for;
5. the targets to try, in order: those the class allows whose circuit is not open;
6. the redaction of the body the class's PII policy asks for;
7. the response-cache key, when the workload caches.

A step that refuses raises :class:`Refused` carrying what the steps before it had decided, so the refusal's
ledger row records it (the audit trail of a refusal is what admission knew when it refused).

Budgets and rate limits (issue 15) are the step after this function, the only one with I/O: the
:class:`~modelyard.gateway.pipeline.Gateway` reserves the plan's worst-case cost
(:mod:`modelyard.gateway.budgeting`) into ``RequestContext.hold``, which the recorder
(:mod:`modelyard.gateway.recording`) settles from what the request actually cost.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from modelyard.config.routing import DataClassPolicy
from modelyard.config.schema import Config, ModelKind
from modelyard.errors import InvalidRequest, ModelyardError, NotFound, PolicyDenied, UpstreamError
from modelyard.gateway.auth import Caller
from modelyard.gateway.metering import RowFacts
from modelyard.gateway.redaction import Redaction, redact_chat, redact_embeddings
from modelyard.gateway.targets import NO_WORKLOAD, Target, Workload
from modelyard.policy.data_classes import ClassDecision, base_data_class, describe, tighten
from modelyard.providers.base import JSON
from modelyard.routing.cache import cache_key
from modelyard.routing.plan import Plan, Route, plan_route


class Sources(NamedTuple):
    """Where a request may name its workload and ask for a data class: for error messages. The HTTP layer
    knows the header names; the core only repeats them."""

    workload: str
    data_class: str


class RequestMeta(NamedTuple):
    """What a request declares about itself beside its body, as the HTTP layer parsed it. (Immutable
    value types on the request path are NamedTuples: a frozen dataclass costs ~3x more to build.)"""

    kind: ModelKind
    sources: Sources
    #: The workload it names (None: none named; not checked yet, so any JSON value), and where it named it.
    workload: object = None
    workload_from: str = ""
    #: Every data class it asks for (a header may come several times: the strictest counts).
    data_classes: tuple[str, ...] = ()
    stream: bool = False
    #: ``stream_options.include_usage``: the client wants the usage chunk at the end of a stream.
    wants_usage: bool = False
    #: The prompt template it names (``name@version``), split; recorded, never routed on.
    template_id: str | None = None
    template_version: str | None = None
    #: The W3C ``traceparent`` it sent (checked by the tracer, which ignores a malformed one).
    traceparent: str | None = None


class RequestPlan(NamedTuple):
    """A request admitted: who it is for, under which class, where it may go and what goes there."""

    workload: Workload
    decision: ClassDecision
    policy: DataClassPolicy
    route: Route[Target]
    #: The targets to try, in order (and what was left out, why).
    attempts: Plan[Target]
    #: The body that goes upstream, and how to restore pseudonyms in the answer.
    redaction: Redaction
    cache_key: str | None
    stream: bool
    wants_usage: bool
    facts: RowFacts


class Refused(Exception):
    """Admission refused the request: ``error`` is what the client gets, ``facts`` what its row records,
    ``route`` the route description (None: say only that it was refused)."""

    def __init__(self, error: ModelyardError, facts: RowFacts, route: str | None = None) -> None:
        super().__init__(str(error))
        self.error, self.facts, self.route = error, facts, route


@dataclass(frozen=True, slots=True)
class Tables:
    """What admission reads, built once at start-up: the config and every public name's route."""

    config: Config
    routes: Mapping[str, Route[Target]]
    cached_workloads: frozenset[str] = field(default_factory=frozenset)
    workloads: Mapping[str, Workload] = field(init=False)
    #: The policy note of each (class, source) pair, so a request does not format it again.
    notes: dict[tuple[str, str], str] = field(init=False)
    #: The class decided by each (workload class, key class) pair before the request asks.
    bases: dict[tuple[str | None, str | None], ClassDecision] = field(init=False)
    #: Steps 1-4 decided, per request shape (see :class:`Decided`).
    decided: dict[tuple[object, ...], Decided] = field(init=False)
    #: Each (route, class)'s plan with every circuit closed (see :func:`_plan`): bounded by the config.
    usual_plans: dict[tuple[str, str], Plan[Target]] = field(init=False)

    def __post_init__(self) -> None:
        workloads = {
            name: Workload(name, w.data_class, w.log_content, w.model)
            for name, w in self.config.workloads.items()
        }
        object.__setattr__(self, "workloads", workloads)
        object.__setattr__(self, "notes", {})
        object.__setattr__(self, "bases", {})
        object.__setattr__(self, "decided", {})
        object.__setattr__(self, "usual_plans", {})

    def base(self, workload_class: str | None, key_class: str | None) -> ClassDecision:
        key = (workload_class, key_class)
        decision = self.bases.get(key)
        if decision is None:
            decision = self.bases[key] = base_data_class(workload_class, key_class)
        return decision

    def note(self, decision: ClassDecision, policy: DataClassPolicy) -> str:
        key = (decision.data_class, decision.source)
        note = self.notes.get(key)
        if note is None:
            note = self.notes[key] = f"{decision.data_class} ({decision.source}); allows {describe(policy)}"
        return note


class Decided(NamedTuple):
    """What admission decides from names alone — the workload, the class, the route — which is the same
    for every request of one shape (workload, key class, classes asked, model, kind, stream): memoised
    in :class:`Tables` after the first such request."""

    workload: Workload
    #: The row's facts before the request asked for a class (what a refusal by the key records).
    base_facts: RowFacts
    decision: ClassDecision
    policy: DataClassPolicy
    facts: RowFacts
    route: Route[Target]
    #: Whether the class's policy looks for PII in the body (step 6), and the workload caches (step 7).
    redacts: bool
    caches: bool
    #: ``facts`` for a streamed request (the shape does not include ``stream``: one entry serves both).
    streamed_facts: RowFacts


#: Distinct request shapes memoised; past this (a client cycling header values) shapes are decided anew.
MAX_DECIDED = 4096


def admit(
    tables: Tables,
    meta: RequestMeta,
    body: JSON,
    caller: Caller | None,
    available: Callable[[Target], bool],
    rng: random.Random,
    all_available: bool = False,
) -> RequestPlan:
    """The plan of one request (steps in the module docstring); raises :class:`Refused`.
    ``all_available`` says that ``available`` holds for every target (no circuit is open or probing):
    then it is not asked target by target."""
    requested = body.get("model")
    shape = (meta.workload, caller.data_class if caller else None, meta.data_classes, requested, meta.kind)
    try:
        decided = tables.decided.get(shape)
        memoise = True
    except TypeError:  # a workload or model named by a JSON object: not a shape, decided (and refused) below
        decided, memoise = None, False
    if decided is None:
        decided = _decide(tables, meta, requested, caller)
        if memoise and len(tables.decided) < MAX_DECIDED:
            tables.decided[shape] = decided
    elif caller is not None:
        try:
            caller.check_workload(decided.workload.name)
        except ModelyardError as error:
            raise _refused(tables, error, decided.base_facts._replace(streamed=meta.stream)) from None
    workload, decision, policy, facts, route = (
        decided.workload,
        decided.decision,
        decided.policy,
        decided.streamed_facts if meta.stream else decided.facts,
        decided.route,
    )
    attempts = _plan(tables, route, decision.data_class, policy, available, rng, all_available)
    if not attempts.candidates:
        raise Refused(_unplannable(decision, policy, route, attempts), facts, attempts.describe())
    if decided.redacts:
        redaction = (redact_chat if meta.kind == "chat" else redact_embeddings)(policy, body)
        if redaction.note:
            facts = RowFacts(
                workload, facts.data_class, f"{facts.policy}; {redaction.note}", route.name, meta.stream
            )
    else:
        redaction = Redaction(body, None, None)
    key = None
    if decided.caches:
        tenant = caller.tenant if caller else None
        key = cache_key(
            route.name, body, workload=workload.name, data_class=decision.data_class, tenant=tenant
        )
    return RequestPlan(
        workload, decision, policy, route, attempts, redaction, key, meta.stream, meta.wants_usage, facts
    )


def _plan(
    tables: Tables,
    route: Route[Target],
    data_class: str,
    policy: DataClassPolicy,
    available: Callable[[Target], bool],
    rng: random.Random,
    all_available: bool,
) -> Plan[Target]:
    """Step 5. A route that draws nothing at random (no load balancing, no shadow) has one usual plan per
    class, the one with every circuit closed: while all its candidates are available it is the plan
    (shared, never changed after planning); else the route is planned anew."""
    if route.strategy == "loadbalance" or route.shadow is not None:
        return plan_route(route, policy, _always if all_available else available, rng)
    usual = tables.usual_plans.get((route.name, data_class))
    if usual is None:
        usual = tables.usual_plans[(route.name, data_class)] = plan_route(route, policy, _always, rng)
    if not all_available:
        for target in usual.candidates:
            if not available(target):
                return plan_route(route, policy, available, rng)
    return usual


def _always(target: Target) -> bool:
    return True


def _decide(tables: Tables, meta: RequestMeta, requested: object, caller: Caller | None) -> Decided:
    """Steps 1-4: the workload, the key's say, the data class, the route."""
    facts = RowFacts(NO_WORKLOAD, None, None, requested if isinstance(requested, str) else "", meta.stream)
    try:
        workload = resolve_workload(tables, meta)
        base = tables.base(workload.data_class, caller.data_class if caller else None)
        policy = tables.config.policy.data_classes[base.data_class]
        facts = base_facts = _facts(tables, workload, base, policy, requested, meta.stream)
        if caller is not None:
            caller.check_workload(workload.name)
        decision = tighten(base, meta.data_classes, meta.sources.data_class)
        if decision is not base:
            policy = tables.config.policy.data_classes[decision.data_class]
            facts = _facts(tables, workload, decision, policy, requested, meta.stream)
        route = resolve_route(tables.routes, requested, workload, meta.kind)
    except ModelyardError as error:
        raise _refused(tables, error, facts) from None
    caches = workload.name is not None and workload.name in tables.cached_workloads
    facts, streamed = facts._replace(streamed=False), facts._replace(streamed=True)
    return Decided(
        workload, base_facts, decision, policy, facts, route, policy.pii != "off", caches, streamed
    )


def _refused(tables: Tables, error: ModelyardError, facts: RowFacts) -> Refused:
    """A refusal in steps 1-4. Once the workload is known, the row names the route the request would
    have taken."""
    known = tables.routes.get(facts.model) if facts.data_class is not None else None
    described = f"{known.strategy}:{known.name}; refused ({error.kind})" if known else None
    return Refused(error, facts, described)


def _facts(
    tables: Tables,
    workload: Workload,
    decision: ClassDecision,
    policy: DataClassPolicy,
    requested: object,
    streamed: bool,
) -> RowFacts:
    name = requested if isinstance(requested, str) else workload.default_model or ""
    return RowFacts(workload, decision.data_class, tables.note(decision, policy), name, streamed)


def _unplannable(
    decision: ClassDecision, policy: DataClassPolicy, route: Route[Target], attempts: Plan[Target]
) -> ModelyardError:
    """Why no target is left to try: the class allows none of them, or none is healthy."""
    if all(why.startswith("policy") for _, why in attempts.skipped):
        return PolicyDenied(
            f"data class '{decision.data_class}' allows {describe(policy)}; "
            f"no target of '{route.name}' qualifies, so the request was not forwarded",
        )
    return UpstreamError(
        f"no healthy target for '{route.name}' ({attempts.describe()})",
        provider="gateway",
        code="no_healthy_target",
        status=503,
    )


def resolve_workload(tables: Tables, meta: RequestMeta) -> Workload:
    """The request's workload: the one it names, else the configured default.

    With no workloads configured every request is accepted without one; once workloads exist, a request
    must name a known one (or the config must set ``server.default_workload``), so traffic is never
    metered under a guess.
    """
    name = meta.workload if meta.workload is not None else tables.config.server.default_workload
    if name is None:
        if not tables.workloads:
            return NO_WORKLOAD
        raise InvalidRequest(
            f"name a workload with the {meta.sources.workload} header or metadata.workload; "
            f"allowed: {', '.join(sorted(tables.workloads))}",
            code="workload_required",
            param="metadata.workload",
        )
    workload = tables.workloads.get(name) if isinstance(name, str) else None
    if workload is None:
        named_in = meta.workload_from or "server.default_workload"
        raise InvalidRequest(
            f"unknown workload {name!r} ({named_in}); "
            f"allowed: {', '.join(sorted(tables.workloads)) or '(none)'}",
            code="unknown_workload",
            param="metadata.workload",
        )
    return workload


def resolve_route(
    routes: Mapping[str, Route[Target]],
    model: Any,
    workload: Workload,
    kind: ModelKind,
) -> Route[Target]:
    """The route for the requested model or route name (or the workload's default)."""
    if model is None:
        model = workload.default_model
        if model is None:
            raise InvalidRequest("'model' is required", code="missing_required_parameter", param="model")
    route = routes.get(model) if isinstance(model, str) else None
    if route is None:
        raise NotFound(
            f"The model {model!r} does not exist on this gateway; available: {', '.join(sorted(routes))}",
            param="model",
        )
    wrong = next((t for t in route.targets if t.kind != kind), None)
    if wrong is not None:
        raise InvalidRequest(
            f"model {model!r} is served by {wrong.kind} model {wrong.public_model!r} and cannot serve {kind} "
            f"requests; if {wrong.public_model!r} is a {kind} model, set 'kind: {kind}' under "
            f"models.{wrong.public_model} in the config",
            code="wrong_model_kind",
            param="model",
        )
    return route
