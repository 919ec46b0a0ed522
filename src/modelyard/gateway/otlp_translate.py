"""The series of ``/metrics`` as OpenTelemetry metrics: pure functions from prometheus_client's collected
families to the SDK's :class:`MetricsData`, which the OTLP exporter encodes (``gateway/otlp_metrics.py``).

Why translate the Prometheus families rather than record the series a second time in an OpenTelemetry
``MeterProvider``: the request path already adds each request to plain numbers once
(:mod:`modelyard.gateway.metrics`), and the SDK's instruments would add a second recording per request
(attribute sets hashed, a lock taken per instrument, for four histograms and six counters) for the same values.
Translating what a scrape reads costs nothing per request and keeps one source of truth: what OTLP
carries is what ``/metrics`` says at that moment, values, buckets, caps on label values and all.

Names go back to the OpenTelemetry spelling (``gen_ai.server.request.duration`` in ``s``, not
``gen_ai_server_request_duration_seconds``) by the table :data:`NAMES`, labels to dotted attributes by
:data:`ATTRIBUTES`; an empty label value (an attribute the request did not have) is left out. Counters
become cumulative monotonic sums and histograms cumulative explicit-bucket histograms, both starting at
the process's start; gauges stay gauges. The mapping is written out in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.metrics_core import Metric as Family

from modelyard import __version__


class OtlpName(NamedTuple):
    """A series' OpenTelemetry name and unit (UCUM, ``{...}`` for a count of things)."""

    name: str
    unit: str
    #: A count of things: sent as integers (``as_int``), not doubles.
    counts: bool = False


#: prometheus_client's family name (a counter's without ``_total``) -> the OTLP name and unit.
NAMES: Mapping[str, OtlpName] = {
    # The OpenTelemetry GenAI conventions' metrics (docs/metrics.md names the version followed).
    "gen_ai_client_token_usage": OtlpName("gen_ai.client.token.usage", "{token}"),
    "gen_ai_server_request_duration_seconds": OtlpName("gen_ai.server.request.duration", "s"),
    "gen_ai_server_time_to_first_token_seconds": OtlpName("gen_ai.server.time_to_first_token", "s"),
    "gen_ai_server_time_per_output_token_seconds": OtlpName("gen_ai.server.time_per_output_token", "s"),
    # modelyard's own, in the same dotted style.
    "modelyard_spend_usd": OtlpName("modelyard.spend", "USD"),
    "modelyard_unpriced_requests": OtlpName("modelyard.requests.unpriced", "{request}", counts=True),
    "modelyard_cache_hits": OtlpName("modelyard.cache.hits", "{request}", counts=True),
    "modelyard_cache_saved_usd": OtlpName("modelyard.cache.saved", "USD"),
    "modelyard_retries": OtlpName("modelyard.retries", "{attempt}", counts=True),
    "modelyard_fallbacks": OtlpName("modelyard.fallbacks", "{fallback}", counts=True),
    "modelyard_circuit_state": OtlpName("modelyard.circuit.state", "1", counts=True),
    # A budget's unit is its ``modelyard.budget.unit`` attribute (usd, tokens or requests): no one unit.
    "modelyard_budget_limit": OtlpName("modelyard.budget.limit", ""),
    "modelyard_budget_spent": OtlpName("modelyard.budget.spent", ""),
    "modelyard_budget_reserved": OtlpName("modelyard.budget.reserved", ""),
    "modelyard_budget_remaining": OtlpName("modelyard.budget.remaining", ""),
    "modelyard_ledger_spool_lag_seconds": OtlpName("modelyard.ledger.spool.lag", "s"),
    "modelyard_ledger_spool_segments": OtlpName("modelyard.ledger.spool.segments", "{segment}", counts=True),
    "modelyard_ledger_queued_rows": OtlpName("modelyard.ledger.queued", "{row}", counts=True),
}

#: modelyard's first series, kept on ``/metrics`` for the dashboards that use them; OTLP has none to keep
#: (their values are in the GenAI series: requests are the duration histogram's count).
PROMETHEUS_ONLY = frozenset(
    {"modelyard_requests", "modelyard_tokens", "modelyard_cost_usd", "modelyard_request_seconds"}
)

#: Prometheus label -> OpenTelemetry attribute. A label missing here keeps its name (never dropped).
ATTRIBUTES: Mapping[str, str] = {
    "gen_ai_operation_name": "gen_ai.operation.name",
    "gen_ai_provider_name": "gen_ai.provider.name",
    "gen_ai_request_model": "gen_ai.request.model",
    "gen_ai_response_model": "gen_ai.response.model",
    "gen_ai_token_type": "gen_ai.token.type",
    "error_type": "error.type",
    "modelyard_workload": "modelyard.workload",
    "modelyard_provider": "modelyard.provider",
    "target": "modelyard.target",
    "budget": "modelyard.budget.name",
    "scope": "modelyard.budget.scope",
    "subject": "modelyard.budget.subject",
    "unit": "modelyard.budget.unit",
}

SCOPE = InstrumentationScope("modelyard", __version__)


def metrics_data(metrics: Sequence[Metric], resource: Resource) -> MetricsData:
    """One export's payload: every metric under one resource (the process) and modelyard's scope."""
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(SCOPE, metrics, "")], "")])


def translate(families: Iterable[Family], start_ns: int, now_ns: int) -> list[Metric]:
    """The OpenTelemetry metrics of these families, as collected at ``now_ns`` and counted since
    ``start_ns``. A family with no samples is left out (OTLP has no way to declare an empty one)."""
    out: list[Metric] = []
    for family in families:
        if family.name in PROMETHEUS_ONLY:
            continue
        name = NAMES.get(family.name) or OtlpName(family.name, family.unit)
        data: Sum | Gauge | Histogram
        if family.type == "histogram":
            data = Histogram(_histogram_points(family, start_ns, now_ns), AggregationTemporality.CUMULATIVE)
        elif family.type == "counter":
            points = _number_points(family, f"{family.name}_total", name.counts, start_ns, now_ns)
            data = Sum(points, AggregationTemporality.CUMULATIVE, is_monotonic=True)
        elif family.type == "gauge":
            data = Gauge(_number_points(family, family.name, name.counts, start_ns, now_ns))
        else:  # summaries, infos: none is collected today
            continue
        if data.data_points:
            out.append(Metric(name.name, family.documentation, name.unit, data))
    return out


def attributes(labels: Mapping[str, str]) -> dict[str, str]:
    """Prometheus labels as OpenTelemetry attributes; an empty value is an attribute not set."""
    return {ATTRIBUTES.get(label, label): value for label, value in labels.items() if value != ""}


def _number_points(
    family: Family, sample_name: str, counts: bool, start_ns: int, now_ns: int
) -> list[NumberDataPoint]:
    return [
        NumberDataPoint(
            attributes(s.labels),
            start_ns,
            now_ns,
            int(s.value) if counts and float(s.value).is_integer() else float(s.value),
        )
        for s in family.samples
        if s.name == sample_name
    ]


def _histogram_points(family: Family, start_ns: int, now_ns: int) -> list[HistogramDataPoint]:
    """Prometheus' cumulative ``le`` buckets back to OpenTelemetry's per-bucket counts (the last one is
    ``+Inf``'s). Read in one pass: prometheus_client lays out each label set's samples together, its
    buckets in ascending order and then its ``_count`` and ``_sum`` (the exposition format's order), so a
    point is complete at its ``_sum``, whose labels are the point's (no ``le``)."""
    bucket_name, sum_name = f"{family.name}_bucket", f"{family.name}_sum"
    points: list[HistogramDataPoint] = []
    bounds: list[float] = []
    per_bucket: list[int] = []
    below = 0
    for sample in family.samples:
        if sample.name == bucket_name:
            le = sample.labels["le"]
            if le != "+Inf":
                bounds.append(float(le))
            running = int(sample.value)
            per_bucket.append(running - below)
            below = running
        elif sample.name == sum_name:
            points.append(
                HistogramDataPoint(
                    attributes=attributes(sample.labels),
                    start_time_unix_nano=start_ns,
                    time_unix_nano=now_ns,
                    count=below,
                    sum=float(sample.value),
                    bucket_counts=per_bucket,
                    explicit_bounds=bounds,
                    # Not kept by the series (a Prometheus histogram has none): left unset in the protobuf.
                    min=None,  # type: ignore[arg-type]
                    max=None,  # type: ignore[arg-type]
                )
            )
            bounds, per_bucket, below = [], [], 0
    return points
