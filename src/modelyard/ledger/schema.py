"""The ledger's row schema: the contract between the gateway and everything that analyses traffic.

One :class:`RequestRow` per client request and one :class:`AttemptRow` per upstream attempt (a request
retried or failed over has several attempts). Documented column by column in ``docs/ledger.md``; the SQL
tables are created by the numbered migrations in ``ledger/migrations/``. Rows are append-only.

``purpose`` says what a request was for: the gateway's answers, or the calls an eval run made
(``modelyard eval run`` records its candidate and judge calls here too, with its run id).

Costs are integers of pico-dollars (1e-12 USD) so that they are exact and ``SUM()`` stays exact in SQLite
and PostgreSQL alike; ``cost_pico_usd`` is NULL when the model has no known price (``priced`` = 0), never 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: Bumped when a migration changes the row shape; written into every spool line.
SCHEMA_VERSION = 5


@dataclass(slots=True)
class RequestRow:
    request_id: str
    #: Unix time (seconds, float) the gateway received the request.
    ts: float
    endpoint: str  # "chat" | "embeddings"
    workload: str | None
    data_class: str | None
    tenant: str | None
    api_key_id: str | None
    #: The public model name the client asked for, and where it went.
    model: str
    provider: str | None
    provider_kind: str | None
    upstream_model: str | None
    #: HTTP status returned to the client.
    status: int
    error_kind: str | None
    streamed: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    cost_pico_usd: int | None = None
    priced: bool = False
    price_version: str | None = None
    #: Milliseconds: whole request as the client saw it; first byte of the answer; time spent waiting on
    #: upstreams; and the gateway's own share (total − upstream).
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_latency_ms: float | None = None
    overhead_ms: float | None = None
    attempts: int = 0
    retries: int = 0
    finish_reason: str | None = None
    client_cancelled: bool = False
    #: Which target served it and why (routing decisions, cache hits, fallbacks).
    route: str | None = None
    #: Only when the workload opted in with ``log_content``: JSON text of the messages and the answer.
    prompt: str | None = None
    completion: str | None = None
    #: The data-class decision, e.g. ``restricted (workload); allows self_hosted; pii masked 2``.
    policy: str | None = None
    #: Served from the exact response cache; ``cost_saved_pico_usd`` is what the original call cost.
    cache_hit: bool = False
    cost_saved_pico_usd: int | None = None
    #: For a call mirrored by a shadow route: the request id it shadows.
    shadow_of: str | None = None
    #: What the call was for: ``answer`` (a client's request), ``shadow`` (a shadow route's mirror),
    #: ``eval`` (an eval run's candidate call) or ``judge`` (an eval run's grading call). Workload volumes
    #: (``decide``) count only answers and shadows; eval and judge calls are the cost of measuring quality.
    purpose: str = "answer"
    #: For ``eval`` and ``judge`` calls: the eval run that made them (the ``run_id`` of its record).
    eval_run_id: str | None = None
    #: The prompt template the client named (``X-Modelyard-Template: name@version`` or
    #: ``metadata.template``): its id and version (None: no version given).
    template_id: str | None = None
    template_version: str | None = None
    #: Tool calls in the answer (``choices[].message.tool_calls``); None where not counted (streams,
    #: embeddings, passthrough endpoints, refusals).
    tool_calls: int | None = None
    #: The OpenTelemetry trace id (32 hex digits) when tracing is on: the client's own when it sent a
    #: ``traceparent``; set whether or not the trace was sampled.
    trace_id: str | None = None
    #: Search units of the answer, as the token columns (rerank APIs that bill per search, such as
    #: Cohere's); 0 for calls billed in tokens.
    search_units: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class AttemptRow:
    request_id: str
    attempt: int
    ts: float
    provider: str
    provider_kind: str
    upstream_model: str
    status: int
    error_kind: str | None
    latency_ms: float
    ttft_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    cost_pico_usd: int | None = None
    priced: bool = False
    #: ``answer`` (the client's request), ``judge`` (a cascade's grading call) or ``shadow``.
    purpose: str = "answer"
    #: Search units this attempt was billed (see ``RequestRow.search_units``).
    search_units: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: One row as its values in column order: how the spool holds rows and the stores insert them.
Values = tuple[Any, ...]

REQUEST_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRow))
ATTEMPT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AttemptRow))

#: Every value of ``RequestRow.purpose``.
PURPOSES: tuple[str, ...] = ("answer", "shadow", "eval", "judge")
#: Purposes of calls made to measure quality rather than to serve traffic: left out of workload volumes.
QUALITY_PURPOSES: tuple[str, ...] = ("eval", "judge")
