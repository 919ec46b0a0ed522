"""The metric families of ``/metrics``, built from the gateway's :class:`~modelyard.gateway.series.Series`
only when scraped (nothing here runs on the request path).

OpenTelemetry names become Prometheus names as the OpenTelemetry-to-Prometheus compatibility spec says:
dots become underscores, a unit in curly braces (``{token}``) is dropped, ``s`` becomes the ``_seconds``
suffix, and counters end in ``_total``. Attributes become labels the same way (``gen_ai.request.model`` ->
``gen_ai_request_model``); an attribute a request does not have (``error.type`` of a success) is the empty
label value, which Prometheus treats as absent. The names, and what each label means here: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelyard.gateway.series import (
    DURATION_BUCKETS,
    TOKEN_BUCKETS,
    TOKEN_TYPES,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
    Series,
    SeriesKey,
)
from modelyard.routing.breaker import State

_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}
#: The labels every GenAI series and modelyard's per-request counters share.
GENAI_LABELS = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "modelyard_workload",
    "modelyard_provider",
]
_TICK = 1e12  # pico-dollars per dollar

Labels = tuple[str, ...]


def _genai(key: SeriesKey) -> Labels:
    """A series' values of GENAI_LABELS, in that order."""
    return (
        key.operation,
        key.provider_name,
        key.request_model,
        key.response_model,
        key.workload,
        key.provider,
    )


def _genai_error(key: SeriesKey) -> Labels:
    return (*_genai(key), key.error_type)


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts, self.total = [0] * size, 0.0

    def add(self, counts: Sequence[int], total: float) -> None:
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.total += total

    def buckets(self, bounds: Sequence[float]) -> list[tuple[str, float]]:
        cumulative, out = 0, list[tuple[str, float]]()
        for bound, count in zip([*map(str, bounds), "+Inf"], self.counts, strict=True):
            cumulative += count
            out.append((bound, cumulative))
        return out


def _histograms(
    series: Mapping[SeriesKey, Series],
    labels: Callable[[SeriesKey], Labels],
    pick: Callable[[Series], tuple[Sequence[int], float]],
    size: int,
) -> dict[Labels, _Histogram]:
    out: dict[Labels, _Histogram] = {}
    for key, one in series.items():
        counts, total = pick(one)
        if not any(counts):
            continue
        histogram = out.get(labels(key))
        if histogram is None:
            histogram = out[labels(key)] = _Histogram(size)
        histogram.add(counts, total)
    return out


def _sums(
    series: Mapping[SeriesKey, Series], labels: Callable[[SeriesKey], Labels], pick: Callable[[Series], float]
) -> dict[Labels, float]:
    out: dict[Labels, float] = {}
    for key, one in series.items():
        out[labels(key)] = out.get(labels(key), 0) + pick(one)
    return out


def _histogram_family(
    name: str,
    help_text: str,
    labels: list[str],
    bounds: Sequence[float],
    values: Mapping[Labels, _Histogram],
    unit: str = "",
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=labels, unit=unit)
    for label_values, histogram in values.items():
        family.add_metric(list(label_values), histogram.buckets(bounds), histogram.total)
    return family


def _token_counts(index: int) -> Callable[[Series], tuple[Sequence[int], float]]:
    def pick(one: Series) -> tuple[Sequence[int], float]:
        return one.tokens[index], one.token_sums[index]

    return pick


class GenAiCollector(Collector):
    """Every series of one gateway but the budget gauges and the ledger's (separate collectors).
    ``circuit_states`` reads each target's breaker state (``Breakers.states``, or a copy of it)."""

    def __init__(
        self, series: Mapping[SeriesKey, Series], circuit_states: Callable[[], Mapping[str, State]]
    ) -> None:
        self._series, self._circuit_states = series, circuit_states

    def collect(self) -> Iterator[Metric]:
        yield from self._genai()
        yield from self._modelyard()
        yield from self._legacy()

    def _genai(self) -> Iterator[Metric]:
        series = self._series
        with_error = [*GENAI_LABELS, "error_type"]
        tokens = HistogramMetricFamily(
            "gen_ai_client_token_usage",
            "Tokens used per request, by token type (OpenTelemetry gen_ai.client.token.usage, unit {token})",
            labels=[*GENAI_LABELS, "gen_ai_token_type"],
        )
        for index, token_type in enumerate(TOKEN_TYPES):
            per_type = _histograms(series, _genai, _token_counts(index), len(TOKEN_BUCKETS) + 1)
            for label_values, histogram in per_type.items():
                tokens.add_metric(
                    [*label_values, token_type], histogram.buckets(TOKEN_BUCKETS), histogram.total
                )
        yield tokens
        yield _histogram_family(
            "gen_ai_server_request_duration",
            "Request duration as the client saw it, to the last byte (OpenTelemetry gen_ai.server.request.duration)",
            with_error,
            DURATION_BUCKETS,
            _histograms(
                series, _genai_error, lambda s: (s.duration, s.duration_sum), len(DURATION_BUCKETS) + 1
            ),
            unit="seconds",
        )
        yield _histogram_family(
            "gen_ai_server_time_to_first_token",
            "Time to the first token of successful streamed answers (OpenTelemetry gen_ai.server.time_to_first_token)",
            GENAI_LABELS,
            TTFT_BUCKETS,
            _histograms(series, _genai, lambda s: (s.ttft, s.ttft_sum), len(TTFT_BUCKETS) + 1),
            unit="seconds",
        )
        yield _histogram_family(
            "gen_ai_server_time_per_output_token",
            "Time per output token after the first, successful streamed answers "
            "(OpenTelemetry gen_ai.server.time_per_output_token)",
            GENAI_LABELS,
            TPOT_BUCKETS,
            _histograms(series, _genai, lambda s: (s.tpot, s.tpot_sum), len(TPOT_BUCKETS) + 1),
            unit="seconds",
        )

    def _modelyard(self) -> Iterator[Metric]:
        series = self._series
        counters: list[tuple[str, str, Callable[[Series], float]]] = [
            (
                "modelyard_spend_usd",
                "Priced spend in USD; unpriced requests are counted apart",
                lambda s: s.cost_pico / _TICK,
            ),
            (
                "modelyard_unpriced_requests",
                "Requests that billed tokens on a model without a known price (their cost is unknown, not 0)",
                lambda s: s.unpriced,
            ),
            (
                "modelyard_cache_hits",
                "Requests answered from the exact response cache",
                lambda s: s.cache_hits,
            ),
            (
                "modelyard_cache_saved_usd",
                "What the cached answers cost when first made, USD",
                lambda s: s.cost_saved_pico / _TICK,
            ),
            (
                "modelyard_retries",
                "Extra upstream attempts on the same target after a retryable failure",
                lambda s: s.retries,
            ),
            (
                "modelyard_fallbacks",
                "Moves to the route's next target after a target failed",
                lambda s: s.fallbacks,
            ),
        ]
        for name, help_text, pick in counters:
            family = CounterMetricFamily(name, help_text, labels=GENAI_LABELS)
            for label_values, value in _sums(series, _genai, pick).items():
                family.add_metric(list(label_values), value)
            yield family

    def _legacy(self) -> Iterator[Metric]:
        """modelyard's first series (kept: dashboards and alerts may use them)."""
        series = self._series
        requests = CounterMetricFamily(
            "modelyard_requests",
            "Requests by workload, model and status",
            labels=["workload", "model", "status"],
        )
        for labels, value in _sums(
            series, lambda k: (k.workload, k.request_model, k.status), lambda s: s.requests
        ).items():
            requests.add_metric(list(labels), value)
        tokens = CounterMetricFamily(
            "modelyard_tokens",
            "Tokens by workload, model and direction",
            labels=["workload", "model", "direction"],
        )
        cost = CounterMetricFamily(
            "modelyard_cost_usd",
            "Priced spend in USD (unpriced calls excluded)",
            labels=["workload", "model"],
        )
        by_model = _sums(series, lambda k: (k.workload, k.request_model), lambda s: 0)
        inputs = _sums(series, lambda k: (k.workload, k.request_model), lambda s: s.token_sums[0])
        outputs = _sums(series, lambda k: (k.workload, k.request_model), lambda s: s.token_sums[1])
        spend = _sums(series, lambda k: (k.workload, k.request_model), lambda s: s.cost_pico)
        for labels in by_model:
            tokens.add_metric([*labels, "input"], inputs[labels])
            tokens.add_metric([*labels, "output"], outputs[labels])
            cost.add_metric(list(labels), spend[labels] / _TICK)
        latency = _histogram_family(
            "modelyard_request_seconds",
            "Request latency as the client saw it",
            ["workload"],
            DURATION_BUCKETS,
            _histograms(
                series,
                lambda k: (k.workload,),
                lambda s: (s.duration, s.duration_sum),
                len(DURATION_BUCKETS) + 1,
            ),
        )
        breaker = GaugeMetricFamily(
            "modelyard_circuit_state",
            "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
            labels=["target"],
        )
        for target, state in self._circuit_states().items():
            breaker.add_metric([target], _STATE_VALUE[state])
        yield from (requests, tokens, cost, latency, breaker)
