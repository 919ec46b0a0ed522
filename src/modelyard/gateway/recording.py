"""Recording: the one place a request's ledger row is built and handed on, however the request ended.

Every request gets exactly one row (plus one per upstream attempt): answered, refused at admission, failed
upstream, cut mid-stream or cancelled by the client. Rows reach the ledger's spool synchronously *before*
the client receives the end of its answer, so an answered request's row survives a crash; the database
write happens later, off the request path.

Budgets and rate limits (issue 15) are settled here: the reservation admission made (``ctx.hold``) is
settled to the row's metered cost and tokens from :meth:`Recorder.record`, the one call every ending passes
through (answered, upstream error, client cancel, cut stream): queued there, applied in a batch right after
that turn of the event loop (:mod:`modelyard.governance.settler`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from modelyard.errors import ModelyardError, UpstreamError
from modelyard.gateway.admission import Refused
from modelyard.gateway.budgeting import Hold, settle
from modelyard.gateway.ledger_metrics import SpoolGauges
from modelyard.gateway.metering import Outcome, RequestContext, RowFacts, request_values
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.targets import NO_WORKLOAD
from modelyard.governance.runtime import Governance
from modelyard.ledger.schema import AttemptRow, RequestRow, Values
from modelyard.ledger.store import LedgerStore

if TYPE_CHECKING:
    from modelyard.gateway.tracing import Tracing
from modelyard.ledger.writer import Ledger

Read = TypeVar("Read")


class LedgerSink(Protocol):
    def record(self, request: RequestRow, attempts: list[AttemptRow]) -> None: ...

    def record_values(self, request: Values, attempts: Sequence[AttemptRow]) -> None: ...

    async def usage(self, tenant: str, since: float = 0.0) -> list[dict[str, Any]]: ...

    async def read(self, query: Callable[[LedgerStore], Read]) -> Read: ...


class Recorder:
    """Builds each request's row from its admission facts and its outcome, and hands it to the ledger
    and the metrics."""

    __slots__ = ("governance", "ledger", "metrics", "tracing")

    def __init__(
        self,
        ledger: LedgerSink,
        metrics: GatewayMetrics,
        governance: Governance | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.ledger, self.metrics, self.governance = ledger, metrics, governance
        #: None when tracing is off: then a request's only cost of tracing is the test below.
        self.tracing = tracing
        if isinstance(ledger, Ledger):  # a test's fake ledger has no spool to watch
            metrics.add(SpoolGauges(ledger))

    def record(self, ctx: RequestContext, facts: RowFacts, outcome: Outcome) -> None:
        # The row as its values, not a RequestRow: the spool line and the metrics read the values, and a
        # row object is built only for what needs one (a settlement, a traced request).
        values = request_values(ctx, facts, outcome)
        attempts = outcome.attempts
        self.ledger.record_values(values, attempts)
        self.metrics.observe(values, attempts)
        row = None
        hold = ctx.hold
        if hold is not None and self.governance is not None:
            ctx.hold = None
            row = RequestRow(*values)
            self._settle(hold, row)
        if self.tracing is not None:
            self.tracing.finish(ctx, row or RequestRow(*values), attempts)

    def _settle(self, hold: Hold, row: RequestRow) -> None:
        """Replace the reservation by what the request used: queued, and applied in a batch right after
        this turn of the event loop (off the loop for a network store; ``governance.settler``). A store
        that fails there must not fail the answer: the hold expires after ``reservation_ttl_s``."""
        assert self.governance is not None
        settle(self.governance, hold, row)

    def refused(self, ctx: RequestContext, refusal: Refused) -> None:
        """A request admission refused: its row keeps what admission had decided."""
        error = refusal.error
        outcome = Outcome(status=error.status, error_kind=error.kind, route=refusal.route)
        self.record(ctx, refusal.facts, outcome)

    def on_failure(self, ctx: RequestContext, facts: RowFacts, outcome: Outcome) -> RecordedOnFailure:
        """A ``with`` block recording the row when the attempts fail or the client goes away."""
        return RecordedOnFailure(lambda error: self.failed(ctx, facts, outcome, error))

    def failed(self, ctx: RequestContext, facts: RowFacts, outcome: Outcome, error: BaseException) -> None:
        """The row of a request whose attempts failed (``UpstreamError``) or whose client went away
        (cancelled); any other exception is a failure of the gateway, answered and recorded above."""
        if isinstance(error, UpstreamError):
            outcome.status, outcome.error_kind = error.status, error.kind
            self.record(ctx, facts, outcome)
        elif isinstance(error, asyncio.CancelledError):
            outcome.status, outcome.error_kind, outcome.client_cancelled = 499, "client_cancelled", True
            self.record(ctx, facts, outcome)


def before_admission(body: Mapping[str, Any] | None, error: ModelyardError) -> Refused:
    """A request refused before admission began (no key, bad JSON, an invalid body): nothing was decided
    but the model it asked for."""
    model = body.get("model") if isinstance(body, Mapping) else None
    streamed = bool(body.get("stream")) if isinstance(body, Mapping) else False
    return Refused(error, RowFacts(NO_WORKLOAD, None, None, str(model or ""), streamed))


class RecordedOnFailure:
    """A ``with`` block whose failure (the attempts failed, or the client went away) is recorded
    (:meth:`Recorder.failed`), then re-raised. The executor's hot paths call ``failed`` from a plain
    ``except`` instead: no object per request."""

    __slots__ = ("failed",)

    def __init__(self, failed: Callable[[BaseException], None]) -> None:
        self.failed = failed

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is not None:
            self.failed(error)
