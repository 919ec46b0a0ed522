"""Budgets and rate limits on the request path (issue 15): the reservation admission makes last, and the
settlement the recorder makes from the request's row, whatever way it ended.

- :func:`reserve` runs once the plan is known (so its route, and therefore its worst-case price): the
  workload's hard caps (400), then the estimate — the prompt counted or bounded, the output bounded by
  ``max_tokens`` or the workload's cap, priced at the dearest target the plan may try — held on every
  budget and rate limit that applies, all or none (429 ``budget_exceeded`` / ``rate_limit_exceeded``).
- :func:`reserve_async` is what the gateway awaits: on the embedded stores the hold joins the batch of its
  event-loop turn (one SQLite transaction for all of them, ``governance/settler.py``); when the store is
  across the network (PostgreSQL, Redis) the reservation runs in the governance's thread pool, so a round
  trip never stalls the event loop's other requests.
- :func:`send_output_bound` puts the reserved output bound into the upstream body of a request that set
  none (each adapter sends it in its provider's own field), so an answer cannot cost more than was held.
- :func:`actual` is what the request really used, from its ledger row: the metered cost (0 when nothing
  was billed; the reserved amount for an unpriced model under ``unpriced: fixed``), and its tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import orjson

from modelyard.config.schema import ModelKind
from modelyard.gateway.targets import Target
from modelyard.governance.budgets import usd_budgets_apply
from modelyard.governance.config import BudgetConfig, GovernanceConfig
from modelyard.governance.estimate import (
    Estimate,
    bound_to_send,
    estimate,
    input_tokens,
    unpriced_actual_cost,
)
from modelyard.governance.model import Actual, Reservation, Subject
from modelyard.governance.runtime import Governance
from modelyard.ledger.schema import RequestRow
from modelyard.providers import cohere
from modelyard.providers.base import JSON


class Hold(NamedTuple):
    """A request's reservation, with what it was estimated from: settled once, by the recorder."""

    reservation: Reservation
    estimate: Estimate
    subject: Subject
    #: The output bound to send upstream, the request having set none (None: send nothing).
    output_bound: int | None = None


#: The chat body's output bound: OpenAI's current name, which its reasoning models require; the adapters
#: translate it (Anthropic ``max_tokens``, Gemini ``maxOutputTokens``, self-hosted servers ``max_tokens``).
OUTPUT_BOUND_FIELD = "max_completion_tokens"


def prompt_texts(body: JSON, kind: ModelKind) -> list[str]:
    """The texts a request's input tokens are counted from, one per message (or embedding input).

    Content parts and tool definitions are counted as their JSON (an over-estimate, which the settlement
    gives back). An image is counted by its URL's bytes, not the tokens a provider bills for it: the one
    case the ``bound`` estimate is not a bound.
    """
    if kind == "embedding":
        raw = body.get("input")
        items = raw if isinstance(raw, list) else [raw]
        return [item if isinstance(item, str) else orjson.dumps(item).decode() for item in items]
    if kind == "rerank":
        # Admission's rerank body is ``input: [query, *documents]``; a reranker reads the query beside
        # every document (Voyage bills query tokens x documents + the documents' tokens).
        query, *documents = map(str, body["input"])
        return [query] * len(documents) + documents
    texts = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else message
        texts.append(content if isinstance(content, str) else orjson.dumps(content).decode())
    for extra in ("tools", "functions", "response_format"):
        if body.get(extra) is not None:
            texts.append(orjson.dumps(body[extra]).decode())
    return texts


def requested_max_tokens(body: JSON) -> int | None:
    """The output bound the request sets (``max_completion_tokens`` is the newer name of ``max_tokens``)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def search_units_bound(body: JSON, kind: ModelKind) -> int:
    """The search units a rerank request can be billed, at most (Cohere's rule, every UTF-8 byte taken
    for a token and the smallest context it documents); 0 for other kinds."""
    if kind != "rerank":
        return 0
    query, *documents = (len(text.encode("utf-8")) for text in body["input"])
    return cohere.search_units(query, documents, cohere.context_tokens(""))


def answers_asked(body: JSON) -> int:
    """How many answers the output bound holds for: ``n``. Chat accepts only n=1; a legacy completion's
    admission body (:func:`modelyard.http.completions_api.admission_body`) sets one per prompt."""
    n = body.get("n")
    return n if type(n) is int and n > 1 else 1


def worst_estimate(
    config: GovernanceConfig,
    targets: Sequence[Target],
    *,
    workload: str | None,
    prompt_tokens: int,
    max_tokens: int | None,
    usd_applies: bool,
    search_units: int = 0,
    answers: int = 1,
) -> Estimate:
    """The estimate at the dearest target a plan may try (a fallback may cost more than the first
    choice); an unpriced one follows ``governance.unpriced``."""
    worst: Estimate | None = None
    for target in targets:
        candidate = estimate(
            config,
            target.price,
            model=target.public_model,
            workload=workload,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            usd_budgets_apply=usd_applies,
            search_units=search_units,
            answers=answers,
        )
        if worst is None or (candidate.cost_pico or 0) > (worst.cost_pico or 0):
            worst = candidate
    assert worst is not None  # admission refuses a plan without candidates before this
    return worst


def reserve(
    governance: Governance,
    subject: Subject,
    body: JSON,
    kind: ModelKind,
    targets: Sequence[Target],
    key_budgets: Sequence[BudgetConfig] = (),
) -> Hold:
    """Check the caps, estimate, and hold the estimate on every budget and rate limit that applies;
    raises the 400 / 403 / 429 the client gets."""
    held = _estimate(governance, subject, body, kind, targets, key_budgets)
    reservation = governance.governor.reserve(subject, held, key_budgets)
    return Hold(reservation, held, subject, bound_to_send(held, reservation.lines))


def _estimate(
    governance: Governance,
    subject: Subject,
    body: JSON,
    kind: ModelKind,
    targets: Sequence[Target],
    key_budgets: Sequence[BudgetConfig],
) -> Estimate:
    """The caps checked, the worst-case estimate, and the ``limits`` package's rate limits admitted."""
    config = governance.config
    prompt = input_tokens(prompt_texts(body, kind), mode=config.input_estimate)
    usd = usd_budgets_apply(config, subject) or any(b.unit == "usd" and b.mode == "hard" for b in key_budgets)
    held = worst_estimate(
        config,
        targets,
        workload=subject.workload,
        prompt_tokens=prompt,
        # An embedding answers with vectors, a reranker with scores: no output tokens to hold.
        max_tokens=requested_max_tokens(body) if kind == "chat" else 0,
        usd_applies=usd,
        search_units=search_units_bound(body, kind),
        answers=answers_asked(body) if kind == "chat" else 1,
    )
    if governance.rate_limiter is not None:
        governance.rate_limiter.admit(subject, held.tokens)
    return held


async def reserve_async(
    governance: Governance,
    subject: Subject,
    body: JSON,
    kind: ModelKind,
    targets: Sequence[Target],
    key_budgets: Sequence[BudgetConfig] = (),
) -> Hold:
    """:func:`reserve` as the gateway awaits it. On the embedded stores the hold joins this event-loop
    turn's batch (one transaction for all of them); on a network store the whole reservation runs in
    the governance's thread pool, and a client gone meanwhile leaves nothing held."""
    offload = governance.settler.offload
    if offload is None:
        held = _estimate(governance, subject, body, kind, targets, key_budgets)
        governor = governance.governor
        reservation = governor.prepare(subject, held, key_budgets)
        if reservation.lines:
            governor.conclude(reservation, await governance.settler.hold(reservation))
        return Hold(reservation, held, subject, bound_to_send(held, reservation.lines))
    call = partial(reserve, governance, subject, body, kind, targets, key_budgets)
    future = asyncio.get_running_loop().run_in_executor(offload, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(partial(_release_late, governance))
        raise


def _release_late(governance: Governance, future: asyncio.Future[Hold]) -> None:
    if future.cancelled() or future.exception() is not None:
        return  # refused, or the store failed: nothing is held
    hold = future.result()
    # requests=0: never sent upstream, so it does not count against a requests-per-minute limit either.
    governance.settler.submit(hold.reservation, Actual(0, 0, 0), hold.subject, -hold.estimate.tokens)


def send_output_bound(hold: Hold, upstream_body: JSON) -> None:
    """Bound the answer of a request that set no ``max_tokens`` at what its reservation assumed."""
    if hold.output_bound is not None:
        upstream_body[OUTPUT_BOUND_FIELD] = hold.output_bound


def settle(governance: Governance, hold: Hold, row: RequestRow) -> None:
    """Queue the settlement of ``hold`` to what ``row`` used (applied in a batch right after this turn
    of the event loop; see :mod:`modelyard.governance.settler`)."""
    used = actual(row, hold)
    governance.settler.submit(hold.reservation, used, hold.subject, used.tokens - hold.estimate.tokens)


def actual(row: RequestRow, hold: Hold) -> Actual:
    """What the request used, from its row: the metered cost, or (unpriced) the rule's amount."""
    tokens = (row.input_tokens or 0) + (row.output_tokens or 0)
    cost = row.cost_pico_usd
    return Actual(unpriced_actual_cost(hold.estimate) if cost is None else cost, tokens)
