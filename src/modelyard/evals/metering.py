"""An eval run's model calls in the ledger, like the gateway's own: what proving quality costs is spend too.

Every call the run's dispatcher sends (a candidate's answer, purpose ``eval``; a judge's grading, purpose
``judge``) becomes one ledger request row with the run's id, and one attempt row per upstream attempt
(retries included). Rows go through the gateway's :class:`~modelyard.ledger.writer.Ledger`: spooled as they
are recorded (a run killed mid-way keeps the rows of every call that returned; the next writer to start
replays them) and stored in batches off the event loop. Answers read from the eval cache cost nothing this
run and make no row.

The costs are the gateway's (:func:`~modelyard.gateway.metering.cost_of`), from the usage the provider
reported: the same figures the run's record holds. Readers tell these rows apart by ``purpose``:
``ledger summary`` groups by it, ``decide`` leaves them out of workload volumes and reports them apart.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from time import perf_counter, time

from modelyard.config.schema import Config
from modelyard.evals.calls import CallResult, CallTag
from modelyard.gateway.metering import RequestContext, attempt_row
from modelyard.gateway.targets import Target
from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.ledger.writer import Ledger
from modelyard.providers.base import Usage


@dataclass(frozen=True, slots=True)
class Attempt:
    """One upstream attempt of a call: when, how long, and how it ended."""

    ts: float
    seconds: float
    status: int
    error_kind: str | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class Trail:
    """A call's attempts, gathered by the dispatcher as they happen."""

    ts: float = field(default_factory=time)
    started: float = field(default_factory=perf_counter)
    attempts: list[Attempt] = field(default_factory=list)


def call_rows(
    run_id: str,
    target: Target,
    tag: CallTag,
    trail: Trail,
    result: CallResult,
    *,
    request_id: str,
    data_class: str | None = None,
    ended: float | None = None,
) -> tuple[RequestRow, list[AttemptRow]]:
    """The ledger rows of one dispatched call. Its cost is the sum of its attempts' (a failed attempt bills
    nothing); unpriced when an attempt billed tokens the catalog has no price for."""
    attempts = [
        _attempt_row(request_id, number, target, a, tag) for number, a in enumerate(trail.attempts, start=1)
    ]
    billed = [a for a in attempts if a.input_tokens or a.output_tokens]
    priced = all(a.priced for a in billed)
    last = trail.attempts[-1] if trail.attempts else None
    upstream = sum(a.seconds for a in trail.attempts)
    latency = ((ended if ended is not None else perf_counter()) - trail.started) * 1000
    usage = result.usage
    row = RequestRow(
        request_id=request_id,
        ts=trail.ts,
        endpoint="chat",
        workload=tag.workload,
        data_class=data_class,
        tenant=None,
        api_key_id=None,
        model=target.public_model,
        provider=target.provider,
        provider_kind=target.provider_kind,
        upstream_model=target.upstream_model,
        status=last.status if last is not None else 599,
        error_kind=last.error_kind if last is not None else "no_attempt",
        streamed=False,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cached_input_tokens=usage.cached_input_tokens if usage else 0,
        cache_write_tokens=usage.cache_write_tokens if usage else 0,
        reasoning_tokens=usage.reasoning_tokens if usage else 0,
        usage_estimated=usage.estimated if usage else False,
        cost_pico_usd=sum(a.cost_pico_usd or 0 for a in billed) if priced else None,
        priced=priced,
        price_version=target.price_version if priced else None,
        latency_ms=latency,
        upstream_latency_ms=upstream * 1000 if attempts else None,
        attempts=len(attempts),
        retries=max(len(attempts) - 1, 0),
        # Which case the call was for: what a reader auditing the run's spend looks for.
        route=f"eval run {run_id}" + (f", case {tag.case_id}" if tag.case_id is not None else ""),
        purpose=tag.purpose,
        eval_run_id=run_id,
    )
    return row, attempts


def _attempt_row(request_id: str, number: int, target: Target, a: Attempt, tag: CallTag) -> AttemptRow:
    # The gateway's own builder (its cost function); each attempt stamped with when it was sent.
    ctx = RequestContext(request_id=request_id, ts=a.ts, t0=0.0, endpoint="chat")
    return attempt_row(
        ctx, number, target, status=a.status, error_kind=a.error_kind, seconds=a.seconds, usage=a.usage,
        purpose=tag.purpose,
    )  # fmt: skip


class EvalMeter:
    """Records one eval run's calls in the ledger (see the module docstring)."""

    def __init__(self, ledger: Ledger, run_id: str, data_classes: Mapping[str, str | None]) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.data_classes = data_classes
        #: Calls recorded, for the run's summary line.
        self.recorded = 0

    def record(self, target: Target, tag: CallTag, trail: Trail, result: CallResult) -> None:
        """Spool the call's rows (microseconds; never waits on the database)."""
        data_class = self.data_classes.get(tag.workload) if tag.workload is not None else None
        request, attempts = call_rows(
            self.run_id,
            target,
            tag,
            trail,
            result,
            request_id=f"eval-{uuid.uuid4().hex}",
            data_class=data_class,
        )
        self.ledger.record(request, attempts)
        self.recorded += 1


@asynccontextmanager
async def open_meter(config: Config, run_id: str) -> AsyncIterator[EvalMeter]:
    """A meter writing to ``config``'s ledger; its rows are stored (or left spooled) on exit, also when the
    run is interrupted."""
    ledger = Ledger(config.ledger)
    await ledger.start()
    try:
        yield EvalMeter(ledger, run_id, {name: w.data_class for name, w in config.workloads.items()})
    finally:
        await ledger.close()
